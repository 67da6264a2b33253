// varcode sample / pack, run as the built binary on the tiny fixtures: sharding, resume after a
// kill, the .npz layout, and refusing a directory of another run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/cli_util.hpp"
#include "io/png.hpp"

namespace varcode {
namespace {

using test::expect_failure;
using test::run_cli;
using test::TempDir;
namespace fs = std::filesystem;
const std::string kPair = test::kPair + " --dtype f32";
// 3 classes x 2 images: small enough for CI, enough for mixed-class batches and shards.
const std::string kRun = kPair + " --classes 0,5-6 --per-class 2 --seed 7 --quiet";
const std::vector<std::string> kNames = {"0_0.png", "0_1.png", "5_0.png", "5_1.png", "6_0.png", "6_1.png"};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// name -> bytes of every PNG in a directory (temporaries and run.json excluded).
std::map<std::string, std::string> pngs_in(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".png") out[name] = read_bytes(e.path().string());
  }
  return out;
}

// A command that must succeed; the test stops here when it does not (ASSERT).
void must_run(const std::string& args, const TempDir& tmp) {
  auto r = run_cli(args, tmp);
  ASSERT_EQ(r.exit_code, 0) << args << "\n" << r.err;
}

// One uninterrupted, unsharded run with batch 4 (classes mixed inside a batch): the reference.
class SampleCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_ = new TempDir;
    auto r = run_cli("sample " + kRun + " --batch 4 --out-dir " + ref_->path("ref") + " --npz " + ref_->path("ref.npz"),
                     *ref_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete ref_;
    ref_ = nullptr;
  }
  static std::map<std::string, std::string> reference() { return pngs_in(ref_->path("ref")); }
  static TempDir* ref_;
};
TempDir* SampleCli::ref_ = nullptr;

TEST_F(SampleCli, WritesEveryImageAndTheRunRecord) {
  auto ref = reference();
  std::vector<std::string> names;
  for (const auto& [n, b] : ref) names.push_back(n);
  EXPECT_EQ(names, kNames);
  io::Image8 im = io::read_png(ref_->path("ref/5_1.png"));
  EXPECT_EQ(im.width, 256);
  EXPECT_EQ(im.height, 256);
  auto j = nlohmann::json::parse(read_bytes(ref_->path("ref/run.json")));
  EXPECT_EQ(j["classes"], (std::vector<int>{0, 5, 6}));
  EXPECT_EQ(j["per_class"], 2);
  EXPECT_EQ(j["seed"], 7);
  EXPECT_EQ(j["sampling"]["top_k"], 600);
  EXPECT_EQ(j["models"]["draft_steps"], 4);
  EXPECT_EQ(j["models"]["drafter"]["name"], "drafter.pth");
  ASSERT_TRUE(j["kernels"].is_array());  // the kernel path that made the images, e.g. "gemm=avx512f32,isa=avx512f"
  ASSERT_EQ(j["kernels"].size(), 1u);
  EXPECT_NE(j["kernels"][0].get<std::string>().find("gemm="), std::string::npos);
  // Different images actually differ (the index keys the draws).
  EXPECT_NE(ref["0_0.png"], ref["0_1.png"]);
}

TEST_F(SampleCli, TwoShardsGiveTheFilesOfOneRun) {
  TempDir tmp;
  must_run("sample " + kRun + " --batch 1 --shard 0/2 --out-dir " + tmp.path("s"), tmp);
  EXPECT_EQ(pngs_in(tmp.path("s")).size(), 3u);  // balanced: half each
  // The second shard comes from an MPI launcher's environment (OpenMPI), with no --shard flag.
  setenv("OMPI_COMM_WORLD_RANK", "1", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  auto r = run_cli("sample " + kRun + " --batch 2 --out-dir " + tmp.path("s"), tmp);
  unsetenv("OMPI_COMM_WORLD_RANK");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(pngs_in(tmp.path("s")), reference());
}

TEST_F(SampleCli, ShardFromMpichEnvironment) {
  TempDir tmp;
  setenv("PMI_RANK", "5", 1);
  setenv("PMI_SIZE", "6", 1);
  auto r = run_cli("sample " + kRun + " --out-dir " + tmp.path("s"), tmp);
  unsetenv("PMI_RANK");
  unsetenv("PMI_SIZE");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto got = pngs_in(tmp.path("s"));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got["6_1.png"], reference()["6_1.png"]);
}

// Runs sample with `env` set for the child only; the PNG names it wrote.
std::vector<std::string> names_with_env(const std::vector<std::pair<std::string, std::string>>& env,
                                        const std::string& extra = "") {
  TempDir tmp;
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  auto r = run_cli("sample " + kRun + extra + " --out-dir " + tmp.path("s"), tmp);
  for (const auto& [k, v] : env) unsetenv(k.c_str());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> names;
  for (const auto& [n, b] : pngs_in(tmp.path("s"))) names.push_back(n);
  return names;
}

TEST_F(SampleCli, ShardFromSlurm) {
  // srun: task 5 of 6 takes the last of the 6 images.
  EXPECT_EQ(names_with_env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}}), (std::vector<std::string>{"6_1.png"}));
  // A job array --array=1-3: task 3 is the third of three shards.
  EXPECT_EQ(
      names_with_env({{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_MIN", "1"}}),
      (std::vector<std::string>{"6_0.png", "6_1.png"}));
  // Both: array task 1 of 2, srun task 0 of 3 -> shard 3 of 6.
  EXPECT_EQ(names_with_env({{"SLURM_ARRAY_TASK_ID", "1"},
                            {"SLURM_ARRAY_TASK_COUNT", "2"},
                            {"SLURM_PROCID", "0"},
                            {"SLURM_NTASKS", "3"}}),
            (std::vector<std::string>{"5_1.png"}));
  // --shard wins over the environment.
  EXPECT_EQ(names_with_env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}}, " --shard 0/6"),
            (std::vector<std::string>{"0_0.png"}));
  TempDir tmp;
  setenv("SLURM_PROCID", "6", 1);
  setenv("SLURM_NTASKS", "6", 1);
  auto r = run_cli("sample " + kRun + " --out-dir " + tmp.path("s"), tmp);
  unsetenv("SLURM_PROCID");
  unsetenv("SLURM_NTASKS");
  expect_failure(r, "SLURM_PROCID=6", tmp);
}

// A shard on another kernel path (here oneDNN's GEMMs instead of the AVX-512 ones) goes on with a
// warning, and run.json lists both paths.
TEST_F(SampleCli, MixedKernelPathsWarn) {
  TempDir tmp;
  must_run("sample " + kRun + " --shard 0/2 --out-dir " + tmp.path("s"), tmp);
  setenv("VARCODE_GEMM", "onednn", 1);
  auto r = run_cli("sample " + kRun + " --shard 1/2 --out-dir " + tmp.path("s"), tmp);
  unsetenv("VARCODE_GEMM");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(read_bytes(tmp.path("s/run.json")));
  if (j["kernels"][0].get<std::string>().find("gemm=onednn") != std::string::npos)
    GTEST_SKIP() << "this CPU runs oneDNN anyway: no second path to mix";
  EXPECT_NE(r.err.find("warning: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("other kernels"), std::string::npos) << r.err;
  EXPECT_EQ(j["kernels"].size(), 2u) << j.dump();
  auto p = run_cli("pack " + tmp.path("s") + " --npz " + tmp.path("s.npz"), tmp);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.err.find("several kernel paths"), std::string::npos) << p.err;
}

// Starts the binary in the background; its pid.
pid_t spawn(const std::string& args, const std::string& err_file) {
  const std::string cmd = "exec '" + test::kCli + "' " + args + " >/dev/null 2>'" + err_file + "'";
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits until DIR holds at least n PNGs (or the process ended); true if it got there.
bool wait_for_pngs(const std::string& dir, size_t n, pid_t pid) {
  for (int i = 0; i < 1200; ++i) {
    if (fs::exists(dir) && pngs_in(dir).size() >= n) return true;
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST_F(SampleCli, KilledRunResumesToIdenticalFiles) {
  TempDir tmp;
  const std::string dir = tmp.path("k");
  pid_t pid = spawn("sample " + kRun + " --batch 1 --out-dir " + dir, tmp.path("err"));
  ASSERT_TRUE(wait_for_pngs(dir, 2, pid)) << read_bytes(tmp.path("err"));
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_LT(pngs_in(dir).size(), kNames.size());
  // A damaged image counts as unfinished and is made again.
  const std::string first = dir + "/0_0.png";
  const std::string bytes = read_bytes(first);
  std::ofstream(first, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  auto r = run_cli("sample " + kRun + " --batch 2 --out-dir " + dir, tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(pngs_in(dir), reference());
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(SampleCli, InterruptedRunSaysHowToResume) {
  TempDir tmp;
  const std::string dir = tmp.path("i");
  pid_t pid = spawn("sample " + kRun + " --batch 1 --out-dir " + dir, tmp.path("err"));
  ASSERT_TRUE(wait_for_pngs(dir, 1, pid)) << read_bytes(tmp.path("err"));
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  const std::string err = read_bytes(tmp.path("err"));
  ASSERT_TRUE(WIFEXITED(st)) << err;
  if (pngs_in(dir).size() < kNames.size()) {  // it may have finished before the signal came
    EXPECT_EQ(WEXITSTATUS(st), 130) << "the documented status of an interrupted run";
    EXPECT_NE(err.find("rerun the same command to resume"), std::string::npos) << err;
  }
  must_run("sample " + kRun + " --out-dir " + dir, tmp);
  EXPECT_EQ(pngs_in(dir), reference());
}

// The .npy inside the .npz: header dict and the raw uint8 data.
struct NpyMember {
  std::string header;
  std::string data;
};
NpyMember read_npz_member(const std::string& path, const std::string& member) {
  int err = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_RDONLY, &err);
  EXPECT_NE(za, nullptr) << path;
  if (!za) return {};
  EXPECT_EQ(zip_get_num_entries(za, 0), 1);
  zip_stat_t st;
  zip_stat(za, member.c_str(), 0, &st);
  EXPECT_EQ(st.comp_method, ZIP_CM_STORE);
  std::string all(static_cast<size_t>(st.size), '\0');
  zip_file_t* zf = zip_fopen(za, member.c_str(), 0);
  EXPECT_NE(zf, nullptr);
  if (zf) {
    EXPECT_EQ(zip_fread(zf, all.data(), st.size), static_cast<zip_int64_t>(st.size));
    zip_fclose(zf);
  }
  zip_close(za);
  NpyMember m;
  EXPECT_EQ(all.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t hlen = static_cast<uint8_t>(all[8]) | static_cast<size_t>(static_cast<uint8_t>(all[9])) << 8;
  EXPECT_EQ((10 + hlen) % 64, 0u);
  m.header = all.substr(10, hlen);
  m.data = all.substr(10 + hlen);
  return m;
}

TEST_F(SampleCli, NpzHoldsTheImagesInOrder) {
  TempDir tmp;
  // `pack` gives the same archive as --npz at the end of the run.
  must_run("pack " + ref_->path("ref") + " --npz " + tmp.path("p.npz") + " --quiet", tmp);
  EXPECT_EQ(read_bytes(tmp.path("p.npz")), read_bytes(ref_->path("ref.npz")));
  NpyMember m = read_npz_member(tmp.path("p.npz"), "arr_0.npy");
  EXPECT_EQ(m.header.rfind("{'descr': '|u1', 'fortran_order': False, 'shape': (6, 256, 256, 3), }", 0), 0u) << m.header;
  EXPECT_EQ(m.header.back(), '\n');
  ASSERT_EQ(m.data.size(), 6u * 256 * 256 * 3);
  for (size_t k = 0; k < kNames.size(); ++k) {
    io::Image8 im = io::read_png(ref_->path("ref/" + kNames[k]));
    ASSERT_EQ(std::memcmp(m.data.data() + k * 256 * 256 * 3, im.rgb.data(), im.rgb.size()), 0) << kNames[k];
  }
  // numpy itself, where this machine has it.
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0) {
    const std::string py = "/usr/bin/python3 -c \"import numpy as np; a = np.load('" + tmp.path("p.npz") +
                           "')['arr_0']; assert a.shape == (6, 256, 256, 3) and a.dtype == np.uint8\"";
    EXPECT_EQ(std::system(py.c_str()), 0);
  }
}

TEST_F(SampleCli, RefusesADirectoryOfAnotherRun) {
  TempDir tmp;
  fs::copy(ref_->path("ref"), tmp.path("d"));
  auto r = run_cli("sample " + kRun + " --cfg 2 --out-dir " + tmp.path("d"), tmp);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("varcode: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sampling"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  r = run_cli("sample " + kPair + " --classes 0,5-6 --per-class 2 --seed 8 --quiet --out-dir " + tmp.path("d"), tmp);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("seed"), std::string::npos) << r.err;
  // --force takes it: the images there are kept, the record is this run's.
  must_run("sample " + kRun + " --cfg 2 --force --out-dir " + tmp.path("d"), tmp);
  EXPECT_EQ(pngs_in(tmp.path("d")), reference());
  EXPECT_EQ(nlohmann::json::parse(read_bytes(tmp.path("d/run.json")))["sampling"]["cfg"], 2.0);
}

TEST(SampleCliErrors, BadInputs) {
  TempDir tmp;
  const std::string out = " --out-dir " + tmp.path("o");
  expect_failure(run_cli("sample " + kPair + " --classes 0-1000" + out, tmp), "--classes: 1000 is outside", tmp);
  expect_failure(run_cli("sample " + kPair + " --classes 5-3" + out, tmp), "--classes: the range '5-3' is empty", tmp);
  expect_failure(run_cli("sample " + kPair + " --classes x" + out, tmp), "--classes: 'x' is not a class", tmp);
  expect_failure(run_cli("sample " + kPair + " --classes 1,1" + out, tmp), "class 1 is given twice", tmp);
  expect_failure(run_cli("sample " + kPair + " --per-class 0" + out, tmp), "--per-class", tmp);
  expect_failure(run_cli("sample " + kPair + " --shard 2/2" + out, tmp), "--shard: 2/2", tmp);
  expect_failure(run_cli("sample " + kPair + " --shard 1" + out, tmp), "--shard: expected I/N", tmp);
  expect_failure(run_cli("pack " + tmp.path("none") + " --npz " + tmp.path("x.npz"), tmp), "run.json: not found", tmp);
}

TEST(SampleCliErrors, PackRefusesAnIncompleteDirectory) {
  TempDir tmp;
  must_run("sample " + kPair + " --classes 3 --per-class 2 --shard 0/2 --quiet --out-dir " + tmp.path("o"), tmp);
  auto r = run_cli("pack " + tmp.path("o") + " --npz " + tmp.path("x.npz"), tmp);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("varcode: error: "), std::string::npos);
  EXPECT_NE(r.err.find("1 of 2 images are missing (3_1.png)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.path("x.npz")));
}

}  // namespace
}  // namespace varcode
