// --device / --gpu on the command line: where no GPU can run the CUDA backend (CI, a build
// without CUDA) --device cuda fails clearly and everything else works as before; auto then runs on
// the CPU and gives the CPU's bytes.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "cli/cli_util.hpp"
#include "varcode/runtime.hpp"

namespace varcode {
namespace {

using test::expect_failure;
using test::run_cli;
using test::TempDir;
const std::string kModels = std::string(VARCODE_SOURCE_DIR) + "/models/";
const std::string kPair = "--vae " + kModels + "fashion_vae.pth --drafter " + kModels +
                          "fashion_drafter.pth --refiner " + kModels + "fashion_refiner.pth --draft-steps 3";

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

bool no_gpu() { return !cuda_unavailable_reason(0).empty(); }

TEST(DeviceCli, CudaWithoutAGpuFailsNamingWhy) {
  if (!no_gpu()) GTEST_SKIP() << "a CUDA GPU is usable here: tests/backend/cuda_generation_test.cpp covers it";
  TempDir tmp;
  for (const std::string& cmd : std::vector<std::string>{
           "generate --class 1 --out " + tmp.path("a.png") + " " + kPair, "bench --runs 1 --warmup 0 " + kPair,
           "decode --tokens " + tmp.path("none.npy") + " --out " + tmp.path("d.png")}) {
    const auto r = run_cli(cmd + " --device cuda", tmp);
    expect_failure(r, "--device cuda: " + cuda_unavailable_reason(0), tmp);
    EXPECT_EQ(r.exit_code, 1) << r.err;  // a usage / environment error, not an internal one
  }
  expect_failure(run_cli("generate --class 1 --out " + tmp.path("a.png") + " " + kPair + " --device cuda:3", tmp),
                 "--device cuda:3: ", tmp);
}

TEST(DeviceCli, AutoRunsOnTheCpuAndGivesItsBytes) {
  if (!no_gpu()) GTEST_SKIP() << "a CUDA GPU is usable here: auto picks it";
  TempDir tmp;
  const std::string common = "generate --quiet --class 1,7 --seed 5 " + kPair;
  ASSERT_EQ(run_cli(common + " --device cpu --out " + tmp.path("cpu.png"), tmp).exit_code, 0);
  const auto r = run_cli(common + " --out " + tmp.path("auto.png"), tmp);  // auto is the default
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // auto on a machine without a GPU says nothing
  EXPECT_EQ(read_file(tmp.path("cpu.png")), read_file(tmp.path("auto.png")));
  const auto said = run_cli("generate --class 1 --seed 5 " + kPair + " --device auto --out " + tmp.path("a2.png"), tmp);
  ASSERT_EQ(said.exit_code, 0) << said.err;
  EXPECT_NE(said.err.find("varcode: device: cpu (no CUDA GPU used: "), std::string::npos) << said.err;
}

TEST(DeviceCli, BadDeviceNamesAreRefused) {
  TempDir tmp;
  for (const std::string& bad : std::vector<std::string>{"gpu", "cuda:", "cuda:x", "cuda:-1", "tpu"})
    expect_failure(run_cli("generate --class 1 --out " + tmp.path("a.png") + " " + kPair + " --device " + bad, tmp),
                   "--device: '" + bad + "' is not a device (expected auto, cpu, cuda or cuda:I)", tmp);
  expect_failure(
      run_cli("generate --class 1 --out " + tmp.path("a.png") + " " + kPair + " --device cuda:1 --gpu 0", tmp),
      "--device cuda:1 and --gpu 0 name different GPUs", tmp);
}

TEST(DeviceCli, Int8IsRefusedOnAGpuBeforeLoading) {
  if (no_gpu()) GTEST_SKIP() << "no CUDA GPU: " << cuda_unavailable_reason(0);
  TempDir tmp;
  expect_failure(
      run_cli("generate --class 1 --out " + tmp.path("a.png") + " " + kPair + " --device cuda --dtype int8", tmp),
      "--dtype int8 is a CPU feature", tmp);
}

}  // namespace
}  // namespace varcode
