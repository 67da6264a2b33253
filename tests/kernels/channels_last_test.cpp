// Channels-last kernels (GroupNorm + SiLU, nearest upsample, layout changes, NHWC convolution and
// attention) against naive references, in f32 and bf16.
#include "kernels/cpu/channels_last.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/conv2d.hpp"
#include "kernels/cpu/vae_attention.hpp"
#include "kernels/kernel_test_util.hpp"
#include "kernels/reference/references.hpp"
#include "model/buffer_pool.hpp"

namespace varcode::kernels::cpu {
namespace {

using varcode::testing::max_abs_diff;
using varcode::testing::random_tensor;

// Naive transposes, element by element.
Tensor to_nhwc(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor y = Tensor::empty(DType::f32, {B, H, W, C});  // [B, H, W, C]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          y.data<float>()[((b * H + h) * W + w) * C + c] = x.data<float>()[((b * C + c) * H + h) * W + w];
  return y;
}
Tensor to_nchw(const Tensor& x) {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty(DType::f32, {B, C, H, W});  // [B, C, H, W]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          y.data<float>()[((b * C + c) * H + h) * W + w] = x.data<float>()[((b * H + h) * W + w) * C + c];
  return y;
}

// GroupNorm (+ SiLU) straight from the definition on [B, H, W, C], two-pass in double.
Tensor naive_group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int G, double eps, bool silu) {
  const int64_t B = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3), cpg = C / G;
  Tensor y = Tensor::empty(DType::f32, x.shape());  // [B, H, W, C]
  const float* p = x.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      double mean = 0, var = 0;
      for (int64_t i = 0; i < HW; ++i)
        for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) mean += p[(b * HW + i) * C + c];
      mean /= static_cast<double>(cpg * HW);
      for (int64_t i = 0; i < HW; ++i)
        for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
          const double d = p[(b * HW + i) * C + c] - mean;
          var += d * d;
        }
      var /= static_cast<double>(cpg * HW);
      for (int64_t i = 0; i < HW; ++i)
        for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
          const int64_t at = (b * HW + i) * C + c;
          double v = (p[at] - mean) / std::sqrt(var + eps) * gamma.data<float>()[c] + beta.data<float>()[c];
          if (silu) v = v / (1.0 + std::exp(-v));
          y.data<float>()[at] = static_cast<float>(v);
        }
    }
  return y;
}

Tensor naive_upsample_nhwc(const Tensor& x) {
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  Tensor y = Tensor::empty(DType::f32, {B, 2 * H, 2 * W, C});  // [B, 2H, 2W, C]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < 2 * H; ++h)
      for (int64_t w = 0; w < 2 * W; ++w)
        for (int64_t c = 0; c < C; ++c)
          y.data<float>()[((b * 2 * H + h) * 2 * W + w) * C + c] = x.data<float>()[((b * H + h / 2) * W + w / 2) * C + c];
  return y;
}

// x rounded to bf16 and back (what a bf16 input holds).
Tensor bf16_rounded(const Tensor& x) { return x.to(DType::bf16).to(DType::f32); }

TEST(GroupNormNhwc, MatchesNaiveReferenceF32) {
  for (bool silu : {false, true}) {
    Tensor x = random_tensor({2, 5, 7, 64}, 1, -3.0f, 5.0f);  // [2, 5, 7, 64]
    Tensor gamma = random_tensor({64}, 2, 0.5f, 1.5f);        // [64]
    Tensor beta = random_tensor({64}, 3);                     // [64]
    Tensor got = Tensor::empty(DType::f32, x.shape());        // [2, 5, 7, 64]
    group_norm_nhwc(x, gamma, beta, 32, 1e-6f, silu, got);
    const double err = max_abs_diff(got, naive_group_norm_nhwc(x, gamma, beta, 32, 1e-6, silu));
    EXPECT_LE(err, 2e-5) << "silu " << silu << ": max abs err " << err;
  }
}

TEST(GroupNormNhwc, LargeMapAndInPlace) {
  // More rows than the 64 statistic chunks, a row count not divisible by them, and a mean far
  // from zero (the single-pass f64 statistics must not lose it).
  Tensor x = random_tensor({1, 33, 31, 96}, 4, 90.0f, 110.0f);  // [1, 33, 31, 96]
  Tensor gamma = random_tensor({96}, 5, 0.5f, 1.5f);             // [96]
  Tensor beta = random_tensor({96}, 6);                          // [96]
  Tensor want = naive_group_norm_nhwc(x, gamma, beta, 32, 1e-6, true);
  Tensor y = x.clone();
  group_norm_nhwc(y, gamma, beta, 32, 1e-6f, true, y);  // in place
  const double err = max_abs_diff(y, want);
  EXPECT_LE(err, 5e-5) << "max abs err " << err;
}

TEST(GroupNormNhwc, Bf16InputsAndOutputs) {
  Tensor x = random_tensor({2, 6, 5, 64}, 7, -2.0f, 3.0f);  // [2, 6, 5, 64]
  Tensor gamma = random_tensor({64}, 8, 0.5f, 1.5f);        // [64]
  Tensor beta = random_tensor({64}, 9);                     // [64]
  const Tensor xr = bf16_rounded(x);
  for (DType in : {DType::f32, DType::bf16})
    for (DType out : {DType::f32, DType::bf16}) {
      const Tensor& src = in == DType::bf16 ? xr : x;
      Tensor want = naive_group_norm_nhwc(src, gamma, beta, 32, 1e-6, true);
      Tensor y = Tensor::empty(out, x.shape());  // [2, 6, 5, 64]
      group_norm_nhwc(in == DType::bf16 ? x.to(DType::bf16) : x, gamma, beta, 32, 1e-6f, true, y);
      // A bf16 store rounds to 8 significant bits: |err| <= 2^-8 |value| (values here < 8).
      const double tol = out == DType::bf16 ? 8.0 / 256.0 : 2e-5;
      const double err = max_abs_diff(y.to(DType::f32), want);
      EXPECT_LE(err, tol) << dtype_name(in) << " -> " << dtype_name(out) << ": max abs err " << err;
    }
}

TEST(GroupNormNhwc, Errors) {
  Tensor x = random_tensor({1, 2, 2, 48}, 1);  // [1, 2, 2, 48]
  Tensor g = random_tensor({48}, 2), b = random_tensor({48}, 3);
  Tensor y = Tensor::empty(DType::f32, x.shape());
  EXPECT_THROW(group_norm_nhwc(x, g, b, 32, 1e-6f, false, y), Error);  // 48 % 32 != 0
  Tensor wrong = Tensor::empty(DType::f32, {1, 2, 2, 47});
  EXPECT_THROW(group_norm_nhwc(x, g, b, 16, 1e-6f, false, wrong), Error);
  // An output aliasing the input in another dtype would overwrite values not yet read.
  Tensor alias = Tensor::borrow(DType::bf16, x.shape(), x.raw(), nullptr);
  EXPECT_THROW(group_norm_nhwc(x, g, b, 16, 1e-6f, false, alias), Error);
}

TEST(UpsampleNhwc, MatchesNaiveReference) {
  Tensor x = random_tensor({2, 3, 5, 40}, 11);  // [2, 3, 5, 40]
  Tensor want = naive_upsample_nhwc(x);
  for (DType in : {DType::f32, DType::bf16})
    for (DType out : {DType::f32, DType::bf16}) {
      Tensor y = Tensor::empty(out, {2, 6, 10, 40});  // [2, 6, 10, 40]
      upsample_nearest2x_nhwc(in == DType::bf16 ? x.to(DType::bf16) : x, y);
      const bool rounded = in == DType::bf16 || out == DType::bf16;
      // Exact in f32; one bf16 rounding otherwise (|x| <= 1).
      const double err = max_abs_diff(y.to(DType::f32), rounded ? bf16_rounded(want) : want);
      EXPECT_EQ(err, 0.0) << dtype_name(in) << " -> " << dtype_name(out);
    }
  Tensor bad = Tensor::empty(DType::f32, {2, 6, 9, 40});
  EXPECT_THROW(upsample_nearest2x_nhwc(x, bad), Error);
}

TEST(LayoutNhwc, RoundTripsAndClamps) {
  Tensor x = random_tensor({2, 3, 4, 5}, 12, -2.0f, 2.0f);  // [2, 3, 4, 5] NCHW
  Tensor y = Tensor::empty(DType::f32, {2, 4, 5, 3});        // [2, 4, 5, 3]
  nchw_to_nhwc(x, y);
  EXPECT_EQ(max_abs_diff(y, to_nhwc(x)), 0.0);
  Tensor back = Tensor::empty(DType::f32, {2, 3, 4, 5});  // [2, 3, 4, 5]
  nhwc_to_nchw(y, back);
  EXPECT_EQ(max_abs_diff(back, x), 0.0);
  nhwc_to_nchw(y, back, -1.0f, 1.0f);
  for (int64_t i = 0; i < x.numel(); ++i)
    EXPECT_EQ(back.data<float>()[i], std::clamp(x.data<float>()[i], -1.0f, 1.0f));
  Tensor yb = Tensor::empty(DType::bf16, {2, 4, 5, 3});  // [2, 4, 5, 3]
  nchw_to_nhwc(x, yb);
  EXPECT_EQ(max_abs_diff(yb.to(DType::f32), bf16_rounded(to_nhwc(x))), 0.0);
  Tensor f = Tensor::empty(DType::f32, yb.shape());
  convert(yb, f);
  EXPECT_EQ(max_abs_diff(f, bf16_rounded(to_nhwc(x))), 0.0);
}

// The channels-last convolution against the NCHW one (itself tested against a naive reference),
// including the fused residual sum and the encoder's asymmetric stride-2 geometry.
TEST(Conv2dNhwc, MatchesNchwPath) {
  struct Case {
    int in, out, k;
    Conv2dGeometry geo;
  };
  for (const Case& c : {Case{16, 32, 3, Conv2dGeometry::same(3)}, Case{32, 3, 3, Conv2dGeometry::same(3)},
                        Case{48, 16, 1, Conv2dGeometry::same(1)}, Case{16, 16, 3, Conv2dGeometry{2, 0, 0, 1, 1}}}) {
    Conv2d conv(random_tensor({c.out, c.in, c.k, c.k}, 21, -0.2f, 0.2f), random_tensor({c.out}, 22), c.geo);
    Tensor x = random_tensor({2, c.in, 10, 12}, 23);  // [2, I, 10, 12]
    Tensor want = conv.forward(x);                    // [2, O, Ho, Wo]
    Tensor resid = random_tensor(want.shape(), 24);   // [2, O, Ho, Wo]
    Tensor want_acc = resid.clone();
    conv.forward_accumulate(x, want_acc);
    for (DType act : {DType::f32, DType::bf16}) {
      Tensor xs = Tensor::empty(act, {2, 10, 12, c.in});  // [2, 10, 12, I]
      nchw_to_nhwc(x, xs);
      Tensor y = Tensor::empty(DType::f32, to_nhwc(want).shape());  // [2, Ho, Wo, O]
      conv.forward_nhwc(xs, y, false);
      Tensor acc = to_nhwc(resid);
      conv.forward_nhwc(xs, acc, true);
      // bf16: inputs and weights rounded to 8 bits, sums of up to 144 products of ~0.1.
      const double tol = act == DType::bf16 ? 0.05 : 1e-5;
      EXPECT_LE(max_abs_diff(to_nchw(y), want), tol) << c.in << "->" << c.out << " " << dtype_name(act);
      EXPECT_LE(max_abs_diff(to_nchw(acc), want_acc), tol) << c.in << "->" << c.out << " " << dtype_name(act);
      Tensor yb = Tensor::empty(DType::bf16, y.shape());  // a bf16 output (bf16 input only)
      if (act == DType::bf16) {
        conv.forward_nhwc(xs, yb, false);
        EXPECT_LE(max_abs_diff(to_nchw(yb.to(DType::f32)), want), 0.08);
      } else {
        EXPECT_THROW(conv.forward_nhwc(xs, yb, false), Error);
      }
    }
    Tensor wrong = Tensor::empty(DType::f32, {2, 10, 12, c.in + 1});
    Tensor y = Tensor::empty(DType::f32, to_nhwc(want).shape());
    EXPECT_THROW(conv.forward_nhwc(wrong, y, false), Error);
  }
}

TEST(VaeAttentionNhwc, MatchesNchwReference) {
  Tensor qkv = random_tensor({2, 24, 4, 5}, 31);  // [2, 3C, 4, 5], C = 8
  Tensor want = vae_attention_reference(qkv);     // [2, 8, 4, 5]
  Tensor qkv_l = to_nhwc(qkv);                    // [2, 4, 5, 24]
  Tensor h = Tensor::empty(DType::f32, {2, 4, 5, 8});
  vae_spatial_attention_nhwc(qkv_l, h);
  EXPECT_LE(max_abs_diff(to_nchw(h), want), 1e-5);
  Tensor bad = Tensor::empty(DType::f32, {2, 4, 5, 9});
  EXPECT_THROW(vae_spatial_attention_nhwc(qkv_l, bad), Error);
}

TEST(BufferPool, ReusesSlabs) {
  model::BufferPool pool;
  Tensor a = pool.acquire(DType::f32, {1000});  // [1000]
  Tensor b = pool.acquire(DType::bf16, {10});   // [10]
  EXPECT_NE(a.raw(), b.raw());
  const void* first = a.raw();
  pool.release(a);
  Tensor c = pool.acquire(DType::bf16, {2000});  // fits a's slab
  EXPECT_EQ(c.raw(), first);
  EXPECT_EQ(pool.slab_count(), 2u);
  EXPECT_THROW(pool.release(random_tensor({4}, 1)), Error);
  pool.release_all();
  Tensor d = pool.acquire(DType::f32, {1 << 20});  // too big for both: replaces the larger free slab
  EXPECT_EQ(pool.slab_count(), 2u);
  pool.release(d);
}

}  // namespace
}  // namespace varcode::kernels::cpu
