#include "kernels/cpu/vae_attention.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/kernel_test_util.hpp"
#include "kernels/reference/references.hpp"

namespace varcode::kernels::cpu {
namespace {

using varcode::testing::max_abs_diff;
using varcode::testing::random_tensor;

TEST(VaeAttention, MatchesNaiveReference) {
  for (const Shape& s : {Shape{1, 3 * 32, 4, 4}, Shape{2, 3 * 24, 5, 3}, Shape{1, 3 * 64, 16, 16}}) {
    Tensor qkv = random_tensor(s, static_cast<uint32_t>(s[1] + s[2]), -2.0f, 2.0f);  // [B, 3C, H, W]
    const int64_t B = s[0], C = s[1] / 3, H = s[2], W = s[3];
    Tensor qkv_l = Tensor::empty(DType::f32, {B, H, W, 3 * C});  // [B, H, W, 3C]
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < 3 * C; ++c)
        for (int64_t p = 0; p < H * W; ++p)
          qkv_l.data<float>()[(b * H * W + p) * 3 * C + c] = qkv.data<float>()[(b * 3 * C + c) * H * W + p];
    Tensor h = Tensor::empty(DType::f32, {B, H, W, C});  // [B, H, W, C]
    vae_spatial_attention_nhwc(qkv_l, h);
    Tensor got = Tensor::empty(DType::f32, {B, C, H, W});  // [B, C, H, W]
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < H * W; ++p)
          got.data<float>()[(b * C + c) * H * W + p] = h.data<float>()[(b * H * W + p) * C + c];
    const double err = max_abs_diff(got, vae_attention_reference(qkv));
    EXPECT_LE(err, 2e-5) << shape_str(s) << ": max abs err " << err;
  }
}

}  // namespace
}  // namespace varcode::kernels::cpu
