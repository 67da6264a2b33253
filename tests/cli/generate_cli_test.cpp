// generate / edit / inspect / convert / bench, run as the built binary.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_util.hpp"
#include "io/npy.hpp"

namespace varcode {
namespace {

using test::expect_failure;
using test::kPair;
using test::kTiny;
using test::run_cli;
using test::run_ok;
using test::TempDir;

TEST(CliParity, GenerateCodeN4MatchesTheFixtureTokens) {
  TempDir tmp;
  run_ok("generate --quiet " + kPair + " --class 207,980 --cfg 1.5 --top-k 1 --top-p 0 --dtype f32 --out " +
             tmp.path("g.png") + " --save-tokens " + tmp.path("t.npy") + " --save-image " + tmp.path("i.npy"),
         tmp);
  Tensor got = io::read_npy(tmp.path("t.npy"));
  Tensor want = io::read_npy(kTiny + "/code_n4_tokens.npy");
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(got.data<int64_t>()[i], want.data<int64_t>()[i]) << i;
  EXPECT_EQ(io::read_npy(tmp.path("i.npy")).shape(), (Shape{2, 3, 256, 256}));
  EXPECT_TRUE(std::filesystem::exists(tmp.path("g.png")));
}

TEST(CliParity, ConvertedSafetensorsGenerateTheSameTokens) {
  TempDir tmp;
  for (const char* m : {"drafter", "refiner", "vae"})
    run_ok("convert " + kTiny + "/" + m + ".pth " + tmp.path(std::string(m) + ".safetensors"), tmp);
  run_ok("generate --quiet --vae " + tmp.path("vae.safetensors") + " --drafter " + tmp.path("drafter.safetensors") +
             " --refiner " + tmp.path("refiner.safetensors") +
             " --draft-steps 4 --class 207,980 --top-k 1 --top-p 0 --dtype f32 "
             "--out-dir " +
             tmp.path("imgs") + " --save-tokens " + tmp.path("t.npy"),
         tmp);
  Tensor got = io::read_npy(tmp.path("t.npy"));
  Tensor want = io::read_npy(kTiny + "/code_n4_tokens.npy");
  for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(got.data<int64_t>()[i], want.data<int64_t>()[i]) << i;
  EXPECT_TRUE(std::filesystem::exists(tmp.path("imgs/000001.png")));
  // bf16 conversion halves the file and still inspects as the same model.
  run_ok("convert " + kTiny + "/drafter.pth " + tmp.path("d16.safetensors") + " --dtype bf16", tmp);
  auto j = nlohmann::json::parse(run_ok("inspect --json " + tmp.path("d16.safetensors"), tmp));
  EXPECT_EQ(j["dtype"], "bf16");
  EXPECT_EQ(j["depth"], 4);
  EXPECT_LT(std::filesystem::file_size(tmp.path("d16.safetensors")),
            std::filesystem::file_size(tmp.path("drafter.safetensors")));
}

TEST(Cli, InspectJsonOfEveryFixture) {
  TempDir tmp;
  auto d = nlohmann::json::parse(run_ok("inspect --json " + kTiny + "/drafter.pth", tmp));
  EXPECT_EQ(d["kind"], "var");
  EXPECT_EQ(d["depth"], 4);
  EXPECT_EQ(d["width"], 256);
  EXPECT_EQ(d["heads"], 4);
  EXPECT_EQ(d["vocab"], 4096);
  EXPECT_EQ(d["num_classes"], 1000);
  EXPECT_EQ(d["patch_nums"], (std::vector<int>{1, 2, 3, 4, 5, 6, 8, 10, 13, 16}));
  EXPECT_EQ(d["shared_adaln"], false);
  EXPECT_GT(d["params"].get<int64_t>(), 0);
  auto r = nlohmann::json::parse(run_ok("inspect --json " + kTiny + "/refiner.pth", tmp));
  EXPECT_EQ(r["depth"], 2);
  auto v = nlohmann::json::parse(run_ok("inspect --json " + kTiny + "/vae.pth", tmp));
  EXPECT_EQ(v["kind"], "vqvae");
  EXPECT_EQ(v["ch"], 32);
  EXPECT_EQ(v["vocab"], 4096);
  EXPECT_EQ(v["z_channels"], 32);
  auto s =
      nlohmann::json::parse(run_ok("inspect --json " + std::string(VARCODE_FIXTURES) + "/tiny512/drafter.pth", tmp));
  EXPECT_EQ(s["shared_adaln"], true);
  EXPECT_EQ(s["patch_nums"], (std::vector<int>{1, 2, 3, 4, 6, 9, 13, 18, 24, 32}));
}

TEST(Cli, GenerateRejectsBadInput) {
  TempDir tmp;
  const std::string out = " --out " + tmp.path("g.png") + " --save-tokens " + tmp.path("t.npy");
  expect_failure(run_cli("generate " + kPair + " --class 1000" + out, tmp), "outside the model's classes [0, 1000)",
                 tmp);
  expect_failure(run_cli("generate " + kPair + " --class 1,x" + out, tmp), "--class", tmp);
  expect_failure(run_cli("generate " + kPair + " --class 1 --cfg abc" + out, tmp), "--cfg", tmp);
  expect_failure(run_cli("generate " + kPair + " --class 1 --temperature 1,2,3" + out, tmp), "--temperature", tmp);
  expect_failure(run_cli("generate --vae " + kTiny + "/vae.pth --model " + kTiny + "/vae.pth --class 1" + out, tmp),
                 "expected a VAR transformer", tmp);
  expect_failure(
      run_cli("generate --vae " + kTiny + "/drafter.pth --model " + kTiny + "/drafter.pth --class 1" + out, tmp),
      "expected the VQ-VAE", tmp);
  expect_failure(run_cli("generate --vae " + kTiny + "/vae.pth --drafter " + kTiny + "/drafter.pth --refiner " + kTiny +
                             "/refiner.pth --draft-steps 10 --class 1" + out,
                         tmp),
                 "--draft-steps", tmp);
  auto unknown = run_cli("generate " + kPair + " --class 1 --bogus-flag" + out, tmp);
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("bogus"), std::string::npos) << unknown.err;
  expect_failure(run_cli("inspect " + tmp.path("missing.pth"), tmp), "missing.pth", tmp);
}

TEST(Cli, EditRejectsBadInput) {
  TempDir tmp;
  const std::string base = "edit --vae " + kTiny + "/vae.pth --model " + kTiny + "/drafter.pth --class 1 --out " +
                           tmp.path("e.png") + " --image ";
  const std::string pic = kTiny + "/vae_encode_input.npy";  // [1, 3, 256, 256] (values outside [0,
                                                            // 1] are fine here)
  expect_failure(run_cli(base + pic + " --box 10,10,300,20", tmp), "--box", tmp);
  expect_failure(run_cli(base + pic + " --outpaint 200", tmp), "--outpaint", tmp);
  expect_failure(run_cli(base + pic, tmp), "exactly one of --mask, --box or --outpaint", tmp);
  expect_failure(run_cli(base + tmp.path("nope.png") + " --box 1,1,9,9", tmp), "nope.png", tmp);
  expect_failure(run_cli(base + pic + " --mask " + kTiny + "/vae_decode_fhat.npy", tmp), "mask", tmp);
}

TEST(Cli, BenchPrintsOneJsonObject) {
  TempDir tmp;
  auto j = nlohmann::json::parse(run_ok("bench " + kPair + " --runs 1 --warmup 0 --dtype f32 --json", tmp));
  for (const char* key :
       {"s_per_image", "images_per_s", "peak_rss_bytes", "drafter", "refiner", "vae", "transformer_gflop_per_s"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_GT(j["s_per_image"].get<double>(), 0);
  EXPECT_EQ(j["mode"], "code");
  // The kernels that ran (runtime.hpp kernel_path): f32 has no int8 part.
  EXPECT_NE(j["kernels"].get<std::string>().find("gemm="), std::string::npos) << j.dump();
  EXPECT_EQ(j["kernels"].get<std::string>().find("int8="), std::string::npos) << j.dump();
}

}  // namespace
}  // namespace varcode
