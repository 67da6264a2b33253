// The fuzz corpus: seeds built with pth_writer, and every input that ever crashed fuzz_pth.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "io/checkpoint.hpp"
#include "io_test_util.hpp"
#include "pth_writer.hpp"

namespace varcode::io {
namespace {

namespace fs = std::filesystem;
using namespace testing;

const std::string kCorpus = std::string(VARCODE_SOURCE_DIR) + "/tests/io/corpus";

std::vector<std::pair<std::string, std::string>> seeds() {
  std::vector<float> six = {0, 1, 2, 3, 4, 5};
  const std::vector<Storage> st = {{"0", f32_bytes(six)}};
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("plain", build_pth(state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, {2, 3}, {3, 1}}}), st));
  out.emplace_back("strided", build_pth(state_dict_pickle({{"t", "FloatStorage", "0", 6, 0, {3, 2}, {1, 3}}}), st));
  out.emplace_back("shared", build_pth(state_dict_pickle({{"a", "FloatStorage", "0", 6, 0, {4}, {1}, true},
                                                          {"b", "FloatStorage", "0", 6, 2, {2, 2}, {2, 1}}}),
                                       st, "drafter"));
  out.emplace_back(
      "nested",
      build_pth(state_dict_pickle({{"module.w", "FloatStorage", "0", 6, 0, {6}, {1}}}, {"trainer", "var_wo_ddp"}), st));
  out.emplace_back(
      "dtypes",
      build_pth(state_dict_pickle({{"h", "HalfStorage", "0", 2, 0, {2}, {1}},
                                   {"b", "BFloat16Storage", "1", 2, 0, {2}, {1}},
                                   {"l", "LongStorage", "2", 1, 0, {1}, {1}},
                                   {"d", "DoubleStorage", "3", 1, 0, {}, {}}}),
                {{"0", u16_bytes({1, 2})}, {"1", u16_bytes({3, 4})}, {"2", i64_bytes({5})}, {"3", f64_bytes({6})}}));
  out.emplace_back("deflate",
                   build_pth(state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, {6}, {1}}}), st, "archive", true));
  out.emplace_back("misaligned",
                   build_pth(state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, {6}, {1}}}), st, "archive", false, 2));
  out.emplace_back("expanded", build_pth(state_dict_pickle({{"x", "FloatStorage", "0", 6, 1, {3, 4}, {0, 1}},
                                                            {"big", "LongStorage", "1", 1, 0, {1}, {1LL << 40}}}),
                                         {{"0", f32_bytes(six)}, {"1", i64_bytes({1LL << 40})}}));
  return out;
}

// Regenerates the seed files: VARCODE_WRITE_FUZZ_SEEDS=1 ./varcode_tests --gtest_filter=FuzzCorpus.*
TEST(FuzzCorpus, SeedsLoad) {
  const bool write = std::getenv("VARCODE_WRITE_FUZZ_SEEDS") != nullptr;
  for (const auto& [name, bytes] : seeds()) {
    Checkpoint ck = load_pth_from_memory(bytes.data(), bytes.size(), name);
    EXPECT_FALSE(ck.tensors.empty()) << name;
    if (write) write_bytes(kCorpus + "/seed_" + name + ".pth", bytes);
  }
}

// Inputs that once crashed the fuzzer (and the seeds) must now load or fail with an Error.
TEST(FuzzCorpus, NothingCrashes) {
  size_t n = 0;
  for (const char* sub : {"", "/crashes"}) {
    if (!fs::is_directory(kCorpus + sub)) continue;
    for (const auto& e : fs::directory_iterator(kCorpus + sub)) {
      if (!e.is_regular_file() || e.path().filename() == "README.md") continue;
      const std::string bytes = read_bytes(e.path().string());
      try {
        load_pth_from_memory(bytes.data(), bytes.size(), e.path().string());
      } catch (const Error& err) {
        EXPECT_NE(std::string(err.what()).find(e.path().string()), std::string::npos) << err.what();
      }
      ++n;
    }
  }
  EXPECT_GT(n, 0u);
}

}  // namespace
}  // namespace varcode::io
