// What every user meets first when something is wrong: `varcode: error: ...` for every failure
// (CLI11's flag errors included), the documented exit statuses, outputs refused before any work,
// class-name suggestions, per-batch progress and streamed --out-dir output.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/cli_util.hpp"

namespace varcode {
namespace {

using test::expect_failure;
using test::run_cli;
using test::TempDir;

constexpr int kBadInput = 1;

void expect_bad_input(const test::RunResult& r, const std::string& part) {
  EXPECT_EQ(r.exit_code, kBadInput) << r.err;
  EXPECT_TRUE(r.err.rfind("varcode: error: ", 0) == 0 || r.err.find("\nvarcode: error: ") != std::string::npos)
      << "no error line: " << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << "stderr: " << r.err << "\nexpected: " << part;
}

TEST(CliErrors, FlagErrorsAreVarcodeErrors) {
  TempDir tmp;
  expect_bad_input(run_cli("generate --bogus 3", tmp), "--bogus");
  expect_bad_input(run_cli("", tmp), "subcommand");
  expect_bad_input(run_cli("nosuch", tmp), "subcommand");
  expect_bad_input(run_cli("decode --out x.png", tmp), "--tokens");
  expect_bad_input(run_cli("generate --batch -1", tmp), "--batch");
  expect_bad_input(run_cli("generate --dtype f64", tmp), "--dtype");
  expect_bad_input(run_cli("generate --out a.png --out-dir d", tmp), "--out");
  const auto help = run_cli("generate --help", tmp);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--class"), std::string::npos);
}

// An output that cannot be written is refused before the models load (no progress line).
TEST(CliErrors, UnwritableOutputsAreRefusedFirst) {
  TempDir tmp;
  const std::string gen = "generate --class 1 --seed 1 --dtype f32 ";
  for (const auto& [flags, part] :
       std::vector<std::pair<std::string, std::string>>{{"--out " + tmp.path("missing/g.png"), "does not exist"},
                                                        {"--out /proc/varcode_test.png", "does not accept new files"},
                                                        {"--out " + tmp.path(""), "is a directory"},
                                                        {"--out-dir /proc/varcode_test_dir", "--out-dir"},
                                                        {"--save-tokens " + tmp.path("missing/t.npy"), "--save-tokens"},
                                                        {"--save-image /proc/i.npy", "--save-image"}}) {
    const auto r = run_cli(gen + flags, tmp);
    expect_bad_input(r, part);
    EXPECT_EQ(r.err.find("[drafter]"), std::string::npos) << "work started before the check: " << r.err;
  }
  expect_bad_input(run_cli("decode --vae v.pth --tokens t.npy --out /proc/d.png", tmp), "does not accept new files");
  expect_bad_input(run_cli("encode --vae v.pth --image i.png --save-tokens " + tmp.path("no/t.npy"), tmp),
                   "does not exist");
  expect_bad_input(run_cli("edit --image i.png --box 1,1,2,2 --class 1 --out /proc/e.png", tmp), "--out");
  expect_bad_input(run_cli("sample --out-dir /proc/varcode_s --classes 1 --per-class 1", tmp), "--out-dir");
}

TEST(CliErrors, MisspeltClassNamesSuggestTheNearest) {
  TempDir tmp;
  const std::string out = " --out " + tmp.path("g.png");
  expect_bad_input(run_cli("generate --class sneakers" + out, tmp), "Did you mean 'Sneaker'?");
  expect_bad_input(run_cli("generate --class trowser" + out, tmp), "Did you mean 'Trouser'?");
  const auto far = run_cli("generate --class xyzzy" + out, tmp);
  expect_bad_input(far, "'xyzzy' is not a class number");
  EXPECT_EQ(far.err.find("Did you mean"), std::string::npos) << far.err;
}

TEST(CliErrors, DecodeProgressNamesTheImagesInFlight) {
  TempDir tmp;
  const auto r =
      run_cli("generate --class all --per-class 2 --seed 1 --dtype f32 --batch 8 --out " + tmp.path("g.png"), tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string line :
       {"[vae] decoding images 1-8 of 20", "[vae] decoding images 9-16 of 20", "[vae] decoding images 17-20 of 20"})
    EXPECT_NE(r.err.find(line), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("decoding images 1-20 of 20"), std::string::npos) << r.err;
}

// --out-dir writes every batch before making the next: when the progress of the second batch is
// on stderr, the first batch's files are already there.
TEST(CliErrors, OutDirStreamsBatchByBatch) {
  TempDir tmp;
  const std::string dir = tmp.path("d");
  // A stale temporary of a killed run, for a name this run writes: removed.
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/000001.png.tmp.999999.AbCdEf") << "stale";
  const std::string cmd = "'" + test::kCli + "' generate --class all --per-class 2 --seed 1 --dtype f32 --batch 2 " +
                          "--out-dir " + dir + " 2>&1 >/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[512];
  bool seen_second_batch = false, first_batch_there = false;
  std::string all;
  while (std::fgets(line, sizeof(line), p)) {
    all += line;
    if (!seen_second_batch && std::string(line).find("(images 2/20 done)") != std::string::npos) {
      seen_second_batch = true;
      first_batch_there = std::filesystem::exists(dir + "/000000.png") && std::filesystem::exists(dir + "/000001.png");
    }
  }
  EXPECT_EQ(pclose(p), 0) << all;
  EXPECT_TRUE(seen_second_batch) << all;
  EXPECT_TRUE(first_batch_there) << "the first batch was not written before the second was made";
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 20u);
}

}  // namespace
}  // namespace varcode
