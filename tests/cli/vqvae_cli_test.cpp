// The decode / encode subcommands, run as the built binary: outputs, and bad inputs (non-zero
// exit, a clear message, no output file left behind).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli_util.hpp"
#include "io/npy.hpp"
#include "io/png.hpp"
#include "test_util.hpp"
#include "varcode/tensor.hpp"

namespace varcode {
namespace {

using test::expect_failure;
using test::run_cli;
using test::RunResult;
using test::TempDir;
namespace fs = std::filesystem;
// The suite's tolerance rule (test_util.hpp) applied to the largest error measured here.
const double kTol = test::tolerance(5.5e-6);  // measured 5.4-5.5e-6
using test::kTiny;

Tensor tokens_of(int64_t B, int64_t L, int64_t value) {
  Tensor t = Tensor::empty(DType::i64, {B, L});  // [B, L]
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = (i * 7 + value) % 4096;
  return t;
}

TEST(CliParity, DecodeWritesTheFixtureImage) {
  TempDir tmp;
  const RunResult r =
      run_cli("decode --vae " + kTiny + "/vae.pth --tokens " + kTiny + "/var_drafter_tokens.npy --out " +
                  tmp.path("grid.png") + " --save-image " + tmp.path("img.npy"),
              tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double err =
      test::max_abs_diff(io::read_npy(tmp.path("img.npy")), io::read_npy(kTiny + "/var_drafter_image.npy"));
  EXPECT_LE(err, kTol) << "max abs err " << err;
  io::Image8 grid = io::read_png(tmp.path("grid.png"));  // two 256 px images side by side
  EXPECT_EQ(grid.width, 512);
  EXPECT_EQ(grid.height, 256);

  const RunResult r2 = run_cli(
      "decode --vae " + kTiny + "/vae.pth --tokens " + kTiny + "/var_drafter_tokens.npy --out-dir " + tmp.path("dir"),
      tmp);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(io::read_png(tmp.path("dir/000000.png")).width, 256);
  EXPECT_TRUE(fs::exists(tmp.path("dir/000001.png")));
  EXPECT_FALSE(fs::exists(tmp.path("dir/000002.png")));
}

TEST(CliParity, EncodeNpyGivesTheFixtureTokens) {
  TempDir tmp;
  Tensor in = io::read_npy(kTiny + "/vae_encode_input.npy");  // [1, 3, 256, 256] in [-1, 1]
  Tensor unit = in.clone();
  for (int64_t i = 0; i < unit.numel(); ++i) unit.data<float>()[i] = (unit.data<float>()[i] + 1.0f) * 0.5f;
  io::write_npy(tmp.path("in.npy"), unit);
  const RunResult r =
      run_cli("encode --vae " + kTiny + "/vae.pth --image " + tmp.path("in.npy") + " --save-tokens " +
                  tmp.path("tok.npy") + " --save-image " + tmp.path("recon.npy") + " --out " + tmp.path("recon.png"),
              tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Tensor tokens = io::read_npy(tmp.path("tok.npy"));
  Tensor want = io::read_npy(kTiny + "/vae_encode_tokens.npy");
  ASSERT_EQ(tokens.shape(), want.shape());
  int64_t mismatches = 0;
  for (int64_t i = 0; i < want.numel(); ++i) mismatches += tokens.data<int64_t>()[i] != want.data<int64_t>()[i];
  EXPECT_EQ(mismatches, 0);
  const double err =
      test::max_abs_diff(io::read_npy(tmp.path("recon.npy")), io::read_npy(kTiny + "/vae_encode_recon.npy"));
  EXPECT_LE(err, kTol) << "max abs err " << err;
  EXPECT_EQ(io::read_png(tmp.path("recon.png")).width, 256);
}

TEST(CliParity, EncodePngOfAnySize) {
  TempDir tmp;
  io::Image8 im;
  im.width = 300;
  im.height = 200;
  im.rgb.resize(300 * 200 * 3);
  for (size_t i = 0; i < im.rgb.size(); ++i) im.rgb[i] = static_cast<uint8_t>((i * 31) % 251);
  io::write_png(tmp.path("in.png"), im);
  const RunResult r = run_cli(
      "encode --vae " + kTiny + "/vae.pth --image " + tmp.path("in.png") + " --save-tokens " + tmp.path("tok.npy"),
      tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::read_npy(tmp.path("tok.npy")).shape(), (Shape{1, 680}));
}

TEST(Cli, DecodeRejectsTokensOutOfRange) {
  TempDir tmp;
  Tensor t = tokens_of(1, 680, 3);
  t.data<int64_t>()[100] = 4096;
  io::write_npy(tmp.path("t.npy"), t);
  expect_failure(run_cli("decode --vae " + kTiny + "/vae.pth --tokens " + tmp.path("t.npy") + " --out " +
                             tmp.path("o.png") + " --save-image " + tmp.path("o.npy"),
                         tmp),
                 "token 4096 at position 100 of row 0 is outside the codebook [0, 4096)", tmp, {"t.npy"});
  t.data<int64_t>()[100] = -5;
  io::write_npy(tmp.path("t.npy"), t);
  expect_failure(
      run_cli("decode --vae " + kTiny + "/vae.pth --tokens " + tmp.path("t.npy") + " --out-dir " + tmp.path("d"), tmp),
      "outside the codebook", tmp, {"t.npy"});
}

TEST(Cli, DecodeRejectsATokenCountOfNoSchedule) {
  TempDir tmp;
  io::write_npy(tmp.path("t.npy"), tokens_of(2, 100, 1));
  expect_failure(
      run_cli("decode --vae " + kTiny + "/vae.pth --tokens " + tmp.path("t.npy") + " --out " + tmp.path("o.png"), tmp),
      "a token count of 100 matches no known scale schedule", tmp, {"t.npy"});
}

TEST(Cli, DecodeRejectsFloatTokensAndMissingOutput) {
  TempDir tmp;
  expect_failure(run_cli("decode --vae " + kTiny + "/vae.pth --tokens " + kTiny + "/var_drafter_gap.npy --out " +
                             tmp.path("o.png"),
                         tmp),
                 "tokens must be an int64 array", tmp);
  expect_failure(run_cli("decode --vae " + kTiny + "/vae.pth --tokens " + kTiny + "/var_drafter_tokens.npy", tmp),
                 "nothing to write", tmp);
}

TEST(Cli, RejectsAVarFileAsVae) {
  TempDir tmp;
  expect_failure(run_cli("decode --vae " + kTiny + "/drafter.pth --tokens " + kTiny + "/var_drafter_tokens.npy --out " +
                             tmp.path("o.png"),
                         tmp),
                 "is a VAR transformer, expected a VQ-VAE", tmp);
  expect_failure(run_cli("encode --vae " + kTiny + "/drafter.pth --image " + kTiny + "/vae_encode_input.npy" +
                             " --save-tokens " + tmp.path("t.npy"),
                         tmp),
                 "is a VAR transformer, expected a VQ-VAE", tmp);
}

TEST(Cli, EncodeRejectsUnreadableImages) {
  TempDir tmp;
  {
    std::ofstream f(tmp.path("bad.png"), std::ios::binary);
    f << "\x89PNG\r\n\x1a\n" << std::string(50, 'x');  // a PNG signature, then garbage
  }
  {
    std::ofstream f(tmp.path("junk.bin"), std::ios::binary);
    f << "not an image at all";
  }
  const std::vector<std::string> inputs{"bad.png", "junk.bin"};
  for (const char* name : {"bad.png", "junk.bin", "missing.png"})
    expect_failure(run_cli("encode --vae " + kTiny + "/vae.pth --image " + tmp.path(name) + " --save-tokens " +
                               tmp.path("t.npy") + " --out " + tmp.path("r.png"),
                           tmp),
                   std::string(name), tmp, inputs);
  // An .npy of a size no schedule has.
  Tensor small = Tensor::zeros(DType::f32, {3, 100, 100});  // [3, 100, 100]
  io::write_npy(tmp.path("small.npy"), small);
  expect_failure(run_cli("encode --vae " + kTiny + "/vae.pth --image " + tmp.path("small.npy") + " --save-tokens " +
                             tmp.path("t.npy"),
                         tmp),
                 "fits no scale schedule", tmp, {"bad.png", "junk.bin", "small.npy"});
}

}  // namespace
}  // namespace varcode

namespace varcode {
namespace {

const std::string kModels = std::string(VARCODE_SOURCE_DIR) + "/models";

// generate --save-tokens with the built-in models writes L = 130 (schedule 1,2,3,4,6,8); decode
// knows that schedule, with the built-in VQ-VAE by default or named, and gives generate's images.
TEST(CliSchedules, DecodeTheBuiltInModelsTokens) {
  TempDir tmp;
  const RunResult g = run_cli("generate --quiet --class 1,7 --seed 4 --dtype f32 --out " + tmp.path("g.png") +
                                  " --save-tokens " + tmp.path("t.npy") + " --save-image " + tmp.path("g.npy"),
                              tmp);
  ASSERT_EQ(g.exit_code, 0) << g.err;
  for (const std::string& vae : {std::string(), " --vae " + kModels + "/fashion_vae.pth"}) {
    for (const std::string& schedule :
         {std::string(), std::string(" --patch-nums 1,2,3,4,6,8"), " --model " + kModels + "/fashion_drafter.pth"}) {
      const RunResult d = run_cli(
          "decode" + vae + schedule + " --tokens " + tmp.path("t.npy") + " --save-image " + tmp.path("d.npy"), tmp);
      ASSERT_EQ(d.exit_code, 0) << vae << schedule << ": " << d.err;
      const double err = test::max_abs_diff(io::read_npy(tmp.path("d.npy")), io::read_npy(tmp.path("g.npy")));
      EXPECT_LE(err, 1e-6) << vae << schedule << ": decode vs generate, max abs err " << err;
    }
  }
  expect_failure(
      run_cli("decode --patch-nums 1,2,3 --tokens " + tmp.path("t.npy") + " --out " + tmp.path("x.png"), tmp),
      "do not follow the schedule given", tmp, {"t.npy", "g.png", "g.npy", "d.npy"});
  expect_failure(
      run_cli("decode --patch-nums 1,3,2 --tokens " + tmp.path("t.npy") + " --out " + tmp.path("x.png"), tmp),
      "--patch-nums: expected increasing", tmp, {"t.npy", "g.png", "g.npy", "d.npy"});
}

// encode with the built-in VQ-VAE: its own 32 px schedule by default (not a 64 px one it never
// saw), any side with --patch-nums, and a clear error for a side of no known schedule.
TEST(CliSchedules, EncodeAtTheVaesOwnAndAnyResolution) {
  TempDir tmp;
  io::Image8 im;
  im.width = 40;
  im.height = 30;
  im.rgb.resize(40 * 30 * 3);
  for (size_t i = 0; i < im.rgb.size(); ++i) im.rgb[i] = static_cast<uint8_t>((i * 13) % 251);
  io::write_png(tmp.path("in.png"), im);
  const std::string in = " --image " + tmp.path("in.png") + " --save-tokens " + tmp.path("t.npy");
  for (const std::string& vae : {std::string(), " --vae " + kModels + "/fashion_vae.pth"}) {
    const RunResult r = run_cli("encode" + vae + in + " --save-image " + tmp.path("r.npy"), tmp);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(io::read_npy(tmp.path("t.npy")).shape(), (Shape{1, 130}));
    EXPECT_EQ(io::read_npy(tmp.path("r.npy")).shape(), (Shape{1, 3, 32, 32}));
  }
  const RunResult any = run_cli("encode --patch-nums 1,2,4,6,12" + in + " --save-image " + tmp.path("r.npy"), tmp);
  ASSERT_EQ(any.exit_code, 0) << any.err;
  EXPECT_EQ(io::read_npy(tmp.path("t.npy")).shape(), (Shape{1, 1 + 4 + 16 + 36 + 144}));
  EXPECT_EQ(io::read_npy(tmp.path("r.npy")).shape(), (Shape{1, 3, 48, 48}));
  const RunResult bad = run_cli("encode --size 48" + in, tmp);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--patch-nums"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace varcode
