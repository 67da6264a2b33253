// `varcode generate` with no model flags: the built-in Fashion-MNIST models and
// their class names.
#include <gtest/gtest.h>

#include <cstdlib>

#include "cli/cli_util.hpp"
#include "io/npy.hpp"
#include "varcode/io.hpp"

namespace varcode {
namespace {

using test::expect_failure;
using test::run_cli;
using test::TempDir;

TEST(Cli, GenerateWithNoModelFlagsUsesTheBuiltInModels) {
  TempDir tmp;
  auto r = run_cli("generate --quiet --class all --per-class 2 --seed 5 --dtype f32 --out " + tmp.path("g.png") +
                       " --save-tokens " + tmp.path("t.npy"),
                   tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::read_npy(tmp.path("t.npy")).shape(), (Shape{20, 130}));
  // one row per class, --per-class images side by side
  EXPECT_EQ(load_png(tmp.path("g.png")).shape(), (Shape{3, 10 * 32, 2 * 32}));
}

TEST(Cli, ClassNamesSelectTheSameClassesAsNumbers) {
  TempDir tmp;
  const std::string common = "generate --quiet --seed 9 --dtype f32 --out " + tmp.path("g.png");
  ASSERT_EQ(run_cli(common + " --class 7,0,9 --save-tokens " + tmp.path("a.npy"), tmp).exit_code, 0);
  auto r = run_cli(common + " --class 'sneaker, T-shirt,ANKLE BOOT' --save-tokens " + tmp.path("b.npy"), tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Tensor a = io::read_npy(tmp.path("a.npy")), b = io::read_npy(tmp.path("b.npy"));
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<int64_t>()[i], b.data<int64_t>()[i]) << i;
}

TEST(Cli, BuiltInModelErrorsNameTheProblem) {
  TempDir tmp;
  const std::string out = " --out " + tmp.path("g.png");
  expect_failure(run_cli("generate --class sneakers" + out, tmp), "names such as 'T-shirt/top'", tmp);
  expect_failure(run_cli("generate --class 10" + out, tmp), "outside the model's classes [0, 10)", tmp);
  expect_failure(run_cli("generate --per-class 3" + out, tmp), "--per-class: needs --class", tmp);
  expect_failure(run_cli("generate --model " + tmp.path("x.pth") + out, tmp), "--vae: required", tmp);
  ::setenv("VARCODE_MODELS", tmp.path("nowhere").c_str(), 1);
  const auto r = run_cli("generate --class 1" + out, tmp);
  ::unsetenv("VARCODE_MODELS");
  expect_failure(r, "built-in Fashion-MNIST models are not found", tmp);
}

}  // namespace
}  // namespace varcode
