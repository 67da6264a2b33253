// The end-to-end paths a user runs first, short enough for the ASan + UBSan pass of
// scripts/test.sh (which otherwise runs unit tests only): a CoDe generation with --dtype auto
// (bf16 where the CPU has it), an inpainting, and a sharded sample packed to .npz, with the shipped models.
// (The name avoids the words the sanitizer pass filters out.)
#include <gtest/gtest.h>

#include "cli/cli_util.hpp"
#include "io/npy.hpp"
#include "varcode/io.hpp"

namespace varcode {
namespace {

using test::run_cli;
using test::TempDir;

TEST(SanitizedPaths, ShippedModelsEndToEnd) {
  TempDir tmp;
  for (const std::string dtype : {"auto"}) {
    const auto g = run_cli("generate --quiet --class 1,7 --seed 3 --dtype " + dtype + " --out " + tmp.path("g.png") +
                               " --save-tokens " + tmp.path("t.npy"),
                           tmp);
    ASSERT_EQ(g.exit_code, 0) << dtype << ": " << g.err;
    EXPECT_EQ(io::read_npy(tmp.path("t.npy")).shape(), (Shape{2, 130}));
  }
  const auto e = run_cli("edit --quiet --image " + tmp.path("g.png") +
                             " --box 4,4,20,20 --class sneaker --seed 2 --out " + tmp.path("e.png") + " --dtype f32",
                         tmp);
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(load_png(tmp.path("e.png")).shape(), (Shape{3, 32, 32}));
  const auto s = run_cli("sample --quiet --out-dir " + tmp.path("s") +
                             " --classes 0-1 --per-class 2 --seed 1 --batch 2" + " --dtype f32 --shard 0/2",
                         tmp);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const auto s2 = run_cli("sample --quiet --out-dir " + tmp.path("s") +
                              " --classes 0-1 --per-class 2 --seed 1 --batch 1" + " --dtype f32 --shard 1/2",
                          tmp);
  ASSERT_EQ(s2.exit_code, 0) << s2.err;
  const auto p = run_cli("pack " + tmp.path("s") + " --npz " + tmp.path("s.npz") + " --quiet", tmp);
  ASSERT_EQ(p.exit_code, 0) << p.err;
}

}  // namespace
}  // namespace varcode
