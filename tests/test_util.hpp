// Shared helpers for the test suite: fixture paths, max-error comparisons, deterministic data.
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

inline double max_abs_diff(const float* a, const float* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

// Max |a - b| over two f32 tensors; infinity when the shapes differ.
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  return max_abs_diff(a.data<float>(), b.data<float>(), a.numel());
}

inline std::vector<float> random_vector(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

}  // namespace varcode::test
