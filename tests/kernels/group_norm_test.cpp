#include "kernels/reference/group_norm.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/silu.hpp"
#include "kernels/kernel_test_util.hpp"

namespace varcode::kernels::cpu {
namespace {

using varcode::testing::max_abs_diff;
using varcode::testing::random_tensor;

Tensor naive_group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int G, double eps, bool silu) {
  const int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3), cpg = C / G;
  Tensor y = Tensor::empty(DType::f32, x.shape());  // [B, C, H, W]
  const float* p = x.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      const float* start = p + (b * C + g * cpg) * HW;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < cpg * HW; ++i) mean += start[i];
      mean /= static_cast<double>(cpg * HW);
      for (int64_t i = 0; i < cpg * HW; ++i) var += (start[i] - mean) * (start[i] - mean);
      var /= static_cast<double>(cpg * HW);
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c)
        for (int64_t i = 0; i < HW; ++i) {
          const int64_t at = (b * C + c) * HW + i;
          double v = (p[at] - mean) / std::sqrt(var + eps) * gamma.data<float>()[c] + beta.data<float>()[c];
          if (silu) v = v / (1.0 + std::exp(-v));
          y.data<float>()[at] = static_cast<float>(v);
        }
    }
  return y;
}

TEST(GroupNorm, MatchesNaiveReference) {
  for (bool silu : {false, true}) {
    Tensor x = random_tensor({2, 64, 5, 7}, 1, -3.0f, 5.0f);  // [2, 64, 5, 7]
    Tensor gamma = random_tensor({64}, 2, 0.5f, 1.5f);        // [64]
    Tensor beta = random_tensor({64}, 3);                     // [64]
    Tensor got = group_norm(x, gamma, beta, 32, 1e-6f, silu);
    const double err = max_abs_diff(got, naive_group_norm(x, gamma, beta, 32, 1e-6, silu));
    EXPECT_LE(err, 2e-5) << "silu " << silu << ": max abs err " << err;
  }
}

TEST(GroupNorm, InPlaceAndErrors) {
  Tensor x = random_tensor({1, 32, 4, 4}, 4);  // [1, 32, 4, 4]
  Tensor gamma = random_tensor({32}, 5);       // [32]
  Tensor beta = random_tensor({32}, 6);        // [32]
  Tensor want = group_norm(x, gamma, beta, 32, 1e-6f, true);
  group_norm(x, gamma, beta, 32, 1e-6f, true, x);
  EXPECT_EQ(max_abs_diff(x, want), 0.0);
  EXPECT_THROW(
      group_norm(random_tensor({1, 30, 2, 2}, 7), random_tensor({30}, 8), random_tensor({30}, 9), 32, 1e-6f, false),
      Error);
}

TEST(Silu, MatchesFormula) {
  Tensor x = random_tensor({3, 1000}, 7, -20.0f, 20.0f);  // [3, 1000]
  Tensor y = x.clone();                                   // [3, 1000]
  silu_inplace(y);
  double err = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double v = x.data<float>()[i];
    err = std::max(err, std::fabs(v / (1.0 + std::exp(-v)) - y.data<float>()[i]) / std::max(1.0, std::fabs(v)));
  }
  EXPECT_LE(err, 1e-6);
  // Saturation: no inf / nan at the ends.
  float ends[4] = {-1000.0f, -88.5f, 88.5f, 1000.0f};
  silu_inplace(ends, 4);
  EXPECT_NEAR(ends[0], 0.0f, 1e-30);
  EXPECT_NEAR(ends[1], 0.0f, 1e-30);
  EXPECT_EQ(ends[2], 88.5f);
  EXPECT_EQ(ends[3], 1000.0f);
}

}  // namespace
}  // namespace varcode::kernels::cpu
