#include "kernels/cpu/vae_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kernel_test_util.hpp"

namespace varcode::kernels::cpu {
namespace {

using varcode::testing::max_abs_diff;
using varcode::testing::random_tensor;

Tensor naive_attention(const Tensor& qkv) {
  const int64_t B = qkv.dim(0), C = qkv.dim(1) / 3, N = qkv.dim(2) * qkv.dim(3);
  Tensor h = Tensor::empty(DType::f32, {B, C, qkv.dim(2), qkv.dim(3)});  // [B, C, H, W]
  for (int64_t b = 0; b < B; ++b) {
    const float* q = qkv.data<float>() + b * 3 * C * N;
    const float* k = q + C * N;
    const float* v = k + C * N;
    for (int64_t j = 0; j < N; ++j) {
      std::vector<double> w(static_cast<size_t>(N));
      double mx = -INFINITY, sum = 0;
      for (int64_t i = 0; i < N; ++i) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(q[c * N + j]) * k[c * N + i];
        w[static_cast<size_t>(i)] = s / std::sqrt(static_cast<double>(C));
        mx = std::max(mx, w[static_cast<size_t>(i)]);
      }
      for (auto& x : w) sum += (x = std::exp(x - mx));
      for (int64_t c = 0; c < C; ++c) {
        double acc = 0;
        for (int64_t i = 0; i < N; ++i) acc += v[c * N + i] * w[static_cast<size_t>(i)] / sum;
        h.data<float>()[(b * C + c) * N + j] = static_cast<float>(acc);
      }
    }
  }
  return h;
}

TEST(VaeAttention, MatchesNaiveReference) {
  for (const Shape& s : {Shape{1, 3 * 32, 4, 4}, Shape{2, 3 * 24, 5, 3}, Shape{1, 3 * 64, 16, 16}}) {
    Tensor qkv = random_tensor(s, static_cast<uint32_t>(s[1] + s[2]), -2.0f, 2.0f);  // [B, 3C, H, W]
    Tensor got = vae_spatial_attention(qkv);
    const double err = max_abs_diff(got, naive_attention(qkv));
    EXPECT_LE(err, 2e-5) << shape_str(s) << ": max abs err " << err;
  }
}

}  // namespace
}  // namespace varcode::kernels::cpu
