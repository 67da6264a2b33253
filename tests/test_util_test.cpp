// The suite's comparison and tolerance helpers: a NaN, an infinity or a shape mismatch must fail
// every comparison (a plain running max of |a - b| ignores NaN, so an all-NaN output passed).
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <limits>

#include "kernels/kernel_test_util.hpp"

namespace varcode {

TEST(TestUtil, MaxAbsDiffFailsOnNonFiniteValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> ok{1, 2, 3};
  for (const float bad : {nan, -nan, inf, -inf})
    for (size_t at = 0; at < 3; ++at) {
      std::vector<float> v = ok;
      v[at] = bad;
      EXPECT_FALSE(test::max_abs_diff(v, ok) <= 1e30) << bad << " at " << at;
      EXPECT_FALSE(test::max_abs_diff(ok, v) <= 1e30) << bad << " at " << at;
      EXPECT_FALSE(test::max_abs_diff(v, v) == 0.0) << "a non-finite value equal to itself still fails";
    }
  const std::vector<float> all_nan(3, nan);
  EXPECT_FALSE(test::max_abs_diff(all_nan, all_nan) <= 1.0);
  EXPECT_FALSE(test::max_abs_diff(all_nan.data(), ok.data(), 3) <= 1.0);
  EXPECT_EQ(test::max_abs_diff(ok, ok), 0.0);
  EXPECT_FLOAT_EQ(test::max_abs_diff(ok, std::vector<float>{1, 2.5f, 3}), 0.5);
}

TEST(TestUtil, MaxAbsDiffFailsOnShapeOrDtypeMismatch) {
  Tensor a = Tensor::zeros(DType::f32, {2, 3}), b = Tensor::zeros(DType::f32, {3, 2});
  EXPECT_EQ(test::max_abs_diff(a, a.clone()), 0.0);
  EXPECT_FALSE(test::max_abs_diff(a, b) <= 1e30);
  EXPECT_FALSE(test::max_abs_diff(a, Tensor::zeros(DType::f32, {6})) <= 1e30);
  EXPECT_FALSE(test::max_abs_diff(a, Tensor::zeros(DType::i64, {2, 3})) <= 1e30);
  EXPECT_FALSE(test::max_abs_diff(std::vector<float>(3), std::vector<float>(4)) <= 1e30);
  Tensor n = a.clone();
  n.data<float>()[4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(test::max_abs_diff(n, a) <= 1e30);
  // The kernel tests' name is the same function.
  EXPECT_FALSE(testing::max_abs_diff(n, a) <= 1e30);
  EXPECT_FALSE(testing::max_abs_diff(a, b) <= 1e30);
}

TEST(TestUtil, ToleranceIsTenTimesTheMeasuredRoundedUp) {
  EXPECT_DOUBLE_EQ(test::tolerance(5e-6), 5e-5);
  EXPECT_DOUBLE_EQ(test::tolerance(4.8e-6), 5e-5);
  EXPECT_DOUBLE_EQ(test::tolerance(3e-5), 5e-4);
  EXPECT_DOUBLE_EQ(test::tolerance(1e-5), 1e-4);
  EXPECT_DOUBLE_EQ(test::tolerance(1.5e-5), 2e-4);
  EXPECT_DOUBLE_EQ(test::tolerance(6e-3), 0.1);
}

// Skips for want of a CPU feature when VARCODE_TEST_PRETEND_NO_CPU is set (run by the next test).
TEST(TestUtil, SkipProbe) {
  VARCODE_SKIP_UNLESS_CPU(std::getenv("VARCODE_TEST_PRETEND_NO_CPU") == nullptr, "pretended CPU without the feature");
}

// A kernel test that skips for want of AVX512-BF16 passes for users and fails when
// VARCODE_REQUIRE_BF16=1 (CI sets it where the CPU has the feature).
TEST(TestUtil, RequiredCpuFeatureFailsInsteadOfSkipping) {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string probe = " '" + self + "' --gtest_filter=TestUtil.SkipProbe >/dev/null 2>&1";
  const int skipped = std::system(("VARCODE_TEST_PRETEND_NO_CPU=1 VARCODE_REQUIRE_BF16=0" + probe).c_str());
  const int required = std::system(("VARCODE_TEST_PRETEND_NO_CPU=1 VARCODE_REQUIRE_BF16=1" + probe).c_str());
  EXPECT_TRUE(WIFEXITED(skipped) && WEXITSTATUS(skipped) == 0) << "a skip must pass for users";
  EXPECT_TRUE(WIFEXITED(required) && WEXITSTATUS(required) != 0) << "a skip must fail when bf16 is required";
}

}  // namespace varcode
