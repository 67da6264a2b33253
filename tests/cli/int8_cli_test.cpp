// --dtype int8 through the built binary: generate, edit, sample and bench run it; convert --dtype
// int8 writes a file that generates the same tokens as quantising on load; a CPU without
// AVX512-VNNI or AVX-VNNI (VARCODE_INT8_ISA=none) is refused with a clear message and nothing
// written; the 256-bit kernel (VARCODE_INT8_ISA=avx512vnni-ymm here, avxvnni on AVX-VNNI CPUs)
// makes the same tokens as the zmm one, and bench / run.json name the kernel that ran.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_util.hpp"
#include "io/npy.hpp"
#include "kernels/cpu/gemm_int8.hpp"

namespace varcode {
namespace {

using test::expect_failure;
using test::kPair;
using test::kTiny;
using test::run_cli;
using test::run_ok;
using test::TempDir;

// Sets an environment variable for the commands this test runs, and puts back what was there
// after (a VARCODE_INT8_ISA the whole test run was started with stays for the tests after).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(CliInt8, RefusedWithoutVnni) {
  TempDir tmp;
  const ScopedEnv env("VARCODE_INT8_ISA", "none");
  expect_failure(run_cli("generate --quiet " + kPair + " --class 1 --dtype int8 --out " + tmp.path("g.png"), tmp),
                 "--dtype int8 needs a CPU with AVX512-VNNI", tmp);
  expect_failure(run_cli("bench " + kPair + " --runs 1 --warmup 0 --dtype int8", tmp), "or AVX-VNNI", tmp);
  expect_failure(
      run_cli("sample " + kPair + " --dtype int8 --classes 0 --per-class 1 --quiet --out-dir " + tmp.path("s"), tmp),
      "AVX512-VNNI", tmp);
}

TEST(CliInt8, GenerateEditSampleBenchAndConvert) {
  if (!kernels::cpu::Int8Gemm::supported()) GTEST_SKIP() << kernels::cpu::int8_unsupported_reason();
  TempDir tmp;
  run_ok("generate --quiet " + kPair + " --class 207,980 --seed 5 --dtype int8 --out " + tmp.path("g.png") +
             " --save-tokens " + tmp.path("t.npy"),
         tmp);
  EXPECT_TRUE(std::filesystem::exists(tmp.path("g.png")));
  // convert --dtype int8 -> the same tokens without quantising again.
  run_ok("convert " + kTiny + "/drafter.pth " + tmp.path("d8.safetensors") + " --dtype int8", tmp);
  run_ok("convert " + kTiny + "/refiner.pth " + tmp.path("r8.safetensors") + " --dtype int8", tmp);
  auto j = nlohmann::json::parse(run_ok("inspect --json " + tmp.path("d8.safetensors"), tmp));
  EXPECT_EQ(j["dtype"], "int8");
  run_ok("generate --quiet --vae " + kTiny + "/vae.pth --drafter " + tmp.path("d8.safetensors") + " --refiner " +
             tmp.path("r8.safetensors") + " --draft-steps 4 --class 207,980 --seed 5 --dtype int8 --out " +
             tmp.path("g2.png") + " --save-tokens " + tmp.path("t2.npy"),
         tmp);
  Tensor a = io::read_npy(tmp.path("t.npy")), b = io::read_npy(tmp.path("t2.npy"));
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<int64_t>()[i], b.data<int64_t>()[i]) << i;
  // The int8 file is smaller than the f32 one and converts back (dequantised) to a valid model.
  run_ok("convert " + kTiny + "/drafter.pth " + tmp.path("d32.safetensors"), tmp);
  EXPECT_LT(std::filesystem::file_size(tmp.path("d8.safetensors")),
            std::filesystem::file_size(tmp.path("d32.safetensors")));
  run_ok("convert " + tmp.path("d8.safetensors") + " " + tmp.path("back.safetensors") + " --dtype f32", tmp);
  EXPECT_EQ(nlohmann::json::parse(run_ok("inspect --json " + tmp.path("back.safetensors"), tmp))["dtype"], "f32");
  // int8 is for transformers only.
  expect_failure(run_cli("convert " + kTiny + "/vae.pth " + tmp.path("v8.safetensors") + " --dtype int8", tmp),
                 "int8 applies to VAR transformers", tmp,
                 {"g.png", "t.npy", "d8.safetensors", "r8.safetensors", "g2.png", "t2.npy", "d32.safetensors",
                  "back.safetensors"});

  run_ok("edit --quiet " + kPair + " --dtype int8 --image " + kTiny +
             "/inpaint_input.npy --box 0,0,128,128 --class 3 "
             "--seed 1 --out " +
             tmp.path("e.png"),
         tmp);
  EXPECT_TRUE(std::filesystem::exists(tmp.path("e.png")));
  run_ok("sample " + kPair + " --dtype int8 --classes 0 --per-class 2 --seed 7 --quiet --out-dir " + tmp.path("s"),
         tmp);
  std::ifstream run_json(tmp.path("s/run.json"));
  EXPECT_EQ(nlohmann::json::parse(run_json)["dtype"], "int8");
  auto bench = nlohmann::json::parse(run_ok("bench " + kPair + " --runs 1 --warmup 0 --dtype int8 --json", tmp));
  EXPECT_EQ(bench["dtype"], "i8");
  EXPECT_GT(bench["s_per_image"].get<double>(), 0);
  const std::string kernel = std::string(",int8=") + kernels::cpu::int8_isa_name(kernels::cpu::int8_isa()) + ",";
  EXPECT_NE(bench["kernels"].get<std::string>().find(kernel), std::string::npos) << bench.dump();
  std::ifstream run_json2(tmp.path("s/run.json"));
  const auto run = nlohmann::json::parse(run_json2);
  ASSERT_TRUE(run["kernels"].is_array()) << run.dump();
  EXPECT_NE(run["kernels"][0].get<std::string>().find(kernel), std::string::npos) << run.dump();
}

// The 256-bit kernel through the model, forced by VARCODE_INT8_ISA: the EVEX twin on AVX512-VNNI
// CPUs, the VEX form on AVX-VNNI ones. Integer sums are exact and its epilogue, GELU and
// quantiser are the zmm kernel's operations, so the tokens are those of the default kernel.
void expect_same_tokens_on(kernels::cpu::Int8Isa isa) {
  if (!kernels::cpu::Int8Gemm::supported()) GTEST_SKIP() << kernels::cpu::int8_unsupported_reason();
  const std::string name = kernels::cpu::int8_isa_name(isa);
  if (!kernels::cpu::int8_isa_runs_here(isa))
    GTEST_SKIP() << "this CPU cannot run the " << name << " kernel"
                 << (isa == kernels::cpu::Int8Isa::avxvnni ? " (no avx_vnni in /proc/cpuinfo)" : "");
  TempDir tmp;
  const std::string args = "generate --quiet " + kPair + " --class 207,980,3 --seed 11 --dtype int8 --out ";
  run_ok(args + tmp.path("g.png") + " --save-tokens " + tmp.path("t.npy"), tmp);
  const ScopedEnv env("VARCODE_INT8_ISA", name.c_str());
  run_ok(args + tmp.path("y.png") + " --save-tokens " + tmp.path("y.npy"), tmp);
  const Tensor ref = io::read_npy(tmp.path("t.npy")), got = io::read_npy(tmp.path("y.npy"));
  ASSERT_EQ(got.shape(), ref.shape());
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_EQ(got.data<int64_t>()[i], ref.data<int64_t>()[i]) << name << " " << i;
  auto bench = nlohmann::json::parse(run_ok("bench " + kPair + " --runs 1 --warmup 0 --dtype int8 --json", tmp));
  EXPECT_NE(bench["kernels"].get<std::string>().find(",int8=" + name + ","), std::string::npos) << bench.dump();
}

TEST(CliInt8, YmmKernelEvexGeneratesTheSameTokens) { expect_same_tokens_on(kernels::cpu::Int8Isa::avx512vnni_ymm); }
TEST(CliInt8, YmmKernelVexGeneratesTheSameTokens) { expect_same_tokens_on(kernels::cpu::Int8Isa::avxvnni); }

// Forcing a kernel the CPU cannot run is an error that says so, before anything is written.
TEST(CliInt8, ForcedKernelTheCpuLacksIsRefused) {
  using kernels::cpu::Int8Isa;
  for (const Int8Isa isa : {Int8Isa::avxvnni, Int8Isa::avx512vnni, Int8Isa::avx512vnni_ymm}) {
    if (kernels::cpu::int8_isa_runs_here(isa)) continue;
    TempDir tmp;
    const std::string name = kernels::cpu::int8_isa_name(isa);
    const ScopedEnv env("VARCODE_INT8_ISA", name.c_str());
    expect_failure(run_cli("generate --quiet " + kPair + " --class 1 --dtype int8 --out " + tmp.path("g.png"), tmp),
                   "VARCODE_INT8_ISA=" + name + ": this CPU cannot run that kernel", tmp);
    return;
  }
  GTEST_SKIP() << "this CPU runs every int8 kernel";
}

}  // namespace
}  // namespace varcode
