// Helpers shared by the kernel tests: seeded random tensors and error measures.
#pragma once
#include <algorithm>
#include <cmath>
#include <random>

#include "test_util.hpp"
#include "varcode/tensor.hpp"

namespace varcode::testing {

inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = Tensor::empty(DType::f32, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

// The suite's one comparison (test_util.hpp): +infinity on a shape mismatch or a non-finite value.
using test::max_abs_diff;

}  // namespace varcode::testing
