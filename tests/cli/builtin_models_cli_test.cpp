// `varcode generate` with no model flags: the built-in Fashion-MNIST models and
// their class names.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

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
  // the default hand-over N = 3, with the base pair (no pair fine-tuned for 3 is shipped)
  EXPECT_EQ(r.err.find("fine-tuned"), std::string::npos) << r.err;
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

// A models folder holding the built-in files plus the given extra names, each
// a link to one of them (the lookup goes by name; what is in the file does not
// matter here).
std::string models_dir_with(const TempDir& tmp, const std::vector<std::pair<std::string, std::string>>& extra) {
  namespace fs = std::filesystem;
  const fs::path dir = tmp.path("models");
  fs::create_directories(dir);
  const fs::path shipped = fs::path(VARCODE_SOURCE_DIR) / "models";
  for (const char* f : {"fashion_vae.pth", "fashion_drafter.pth", "fashion_refiner.pth", "classes.txt"})
    fs::create_symlink(shipped / f, dir / f);
  for (const auto& [name, target] : extra) fs::create_symlink(shipped / target, dir / name);
  return dir.string();
}

// Runs `varcode <args>` with VARCODE_MODELS set to `dir`.
test::RunResult run_with_models(const std::string& dir, const std::string& args, const TempDir& tmp) {
  ::setenv("VARCODE_MODELS", dir.c_str(), 1);
  auto r = run_cli(args, tmp);
  ::unsetenv("VARCODE_MODELS");
  return r;
}

TEST(Cli, DraftStepsAlonePicksThePairFineTunedForIt) {
  TempDir tmp;
  const std::string dir = models_dir_with(tmp, {{"fashion_refiner_2.pth", "fashion_refiner.pth"},
                                                {"fashion_drafter_4.pth", "fashion_drafter.pth"},
                                                {"fashion_refiner_4.pth", "fashion_refiner.pth"}});
  const std::string common = "generate --quiet --class 1,7 --seed 3 --dtype f32 --out " + tmp.path("g.png") +
                             " --save-tokens " + tmp.path("t.npy");
  auto r = run_with_models(dir, common + " --draft-steps 2", tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // a tuned refiner alone: the base drafter with it
  EXPECT_NE(r.err.find("fine-tuned for --draft-steps 2 (fashion_drafter.pth, fashion_refiner_2.pth)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(io::read_npy(tmp.path("t.npy")).shape(), (Shape{2, 130}));
  r = run_with_models(dir, common + " --draft-steps 4", tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("fine-tuned for --draft-steps 4 (fashion_drafter_4.pth, fashion_refiner_4.pth)"),
            std::string::npos)
      << r.err;
  // no pair for N = 1: the base pair, nothing said
  r = run_with_models(dir, common + " --draft-steps 1", tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("fine-tuned"), std::string::npos) << r.err;
  EXPECT_EQ(io::read_npy(tmp.path("t.npy")).shape(), (Shape{2, 130}));
}

TEST(Cli, DraftStepsAloneErrorsNameTheProblem) {
  TempDir tmp;
  const std::string out = " --out " + tmp.path("g.png");
  expect_failure(run_cli("generate --vae " + tmp.path("v.pth") + " --draft-steps 3" + out, tmp),
                 "--draft-steps: needs --drafter and --refiner", tmp);
  expect_failure(run_cli("generate --draft-steps 0" + out, tmp), "--draft-steps 0 is outside [1, 5]", tmp);
  expect_failure(run_cli("generate --draft-steps 6" + out, tmp), "--draft-steps 6 is outside [1, 5]", tmp);
}

}  // namespace
}  // namespace varcode
