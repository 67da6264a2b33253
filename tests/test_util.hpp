// Shared helpers for the test suite: fixture paths, max-error comparisons, tolerances, deterministic
// data.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

namespace varcode::test {

// ../shared/fixtures (override with VARCODE_FIXTURES in the environment).
inline std::string fixtures_dir() {
  const char* env = std::getenv("VARCODE_FIXTURES");
  return env ? std::string(env) : std::string(VARCODE_FIXTURES);
}
inline std::string fixture(const std::string& rel) { return fixtures_dir() + "/" + rel; }

// Max |a - b| over n values, and +infinity as soon as either side holds a NaN or an infinity:
// std::max(m, NaN) keeps m, so a plain running max would let an all-NaN output pass. Every
// comparison in the suite goes through these, so `EXPECT_LE(err, tol)` and `EXPECT_EQ(err, 0.0)`
// both fail on a non-finite value.
inline double max_abs_diff(const float* a, const float* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return m;
}

// Over two f32 tensors: +infinity when the shapes or dtypes differ (or a value is not finite).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != DType::f32 || b.dtype() != DType::f32) return INFINITY;
  return max_abs_diff(a.data<float>(), b.data<float>(), a.numel());
}

// Over two vectors: +infinity when the sizes differ.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  return max_abs_diff(a.data(), b.data(), static_cast<int64_t>(a.size()));
}

// The tolerance rule of every golden and kernel test, written once: ten times the largest error
// measured (on the AVX-512 kernels and on the oneDNN path, VARCODE_GEMM=onednn), rounded up to
// 1, 2 or 5 x 10^k. Ten times leaves room for another compiler or core count's summation order
// and is still far below what a real regression moves (a wrong token, a lost rounding step: 100x
// and more). Each use states the measured figure: `test::tolerance(4.8e-6)`.
// VARCODE_TEST_MEASURE=1 makes every tolerance 0, so each comparison fails and prints its error:
// how the measured figures are taken again (`VARCODE_TEST_MEASURE=1 ./build/varcode_tests`).
inline double tolerance(double measured) {
  if (const char* env = std::getenv("VARCODE_TEST_MEASURE"); env && std::string(env) == "1") return 0.0;
  const double t = 10.0 * measured;
  const double decade = std::pow(10.0, std::floor(std::log10(t)));
  for (double step : {1.0, 2.0, 5.0, 10.0})
    if (t <= step * decade * (1 + 1e-9)) return step * decade;
  return 10.0 * decade;
}

// True when VARCODE_REQUIRE_BF16=1: CI sets it (scripts/test.sh, on a CPU with avx512_bf16), so a
// kernel test that would skip for want of AVX-512 / AVX512-BF16 fails there instead.
inline bool bf16_required() {
  const char* env = std::getenv("VARCODE_REQUIRE_BF16");
  return env && std::string(env) == "1";
}

}  // namespace varcode::test

// In a test body: skip when the CPU lacks a feature (users' machines), fail when bf16 is required.
#define VARCODE_SKIP_UNLESS_CPU(supported, what)                                                \
  do {                                                                                          \
    if (!(supported)) {                                                                         \
      if (::varcode::test::bf16_required()) GTEST_FAIL() << "VARCODE_REQUIRE_BF16=1: " << what; \
      GTEST_SKIP() << what;                                                                     \
    }                                                                                           \
  } while (0)

namespace varcode::test {

inline std::vector<float> random_vector(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

}  // namespace varcode::test
