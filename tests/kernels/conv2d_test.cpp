#include "kernels/cpu/conv2d.hpp"

#include <gtest/gtest.h>

#include "kernels/kernel_test_util.hpp"

namespace varcode::kernels::cpu {
namespace {

using varcode::testing::max_abs_diff;
using varcode::testing::random_tensor;

// Straight from the definition, in double.
Tensor naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Conv2dGeometry g) {
  const int64_t B = x.dim(0), I = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t O = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t Ho = (H + g.pad_top + g.pad_bottom - kh) / g.stride + 1;
  const int64_t Wo = (W + g.pad_left + g.pad_right - kw) / g.stride + 1;
  Tensor y = Tensor::empty(DType::f32, {B, O, Ho, Wo});  // [B, O, Ho, Wo]
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  for (int64_t n = 0; n < B; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          double acc = b.data<float>()[o];
          for (int64_t i = 0; i < I; ++i)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * g.stride - g.pad_top + ky, ix = ox * g.stride - g.pad_left + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += static_cast<double>(xp[((n * I + i) * H + iy) * W + ix]) * wp[((o * I + i) * kh + ky) * kw + kx];
              }
          y.data<float>()[((n * O + o) * Ho + oy) * Wo + ox] = static_cast<float>(acc);
        }
  return y;
}

struct Case {
  const char* name;
  int B, I, O, H, W, k;
  Conv2dGeometry geo;
};

TEST(Conv2d, MatchesNaiveReference) {
  const Case cases[] = {
      {"3x3 same", 2, 5, 7, 9, 11, 3, Conv2dGeometry::same(3)},
      {"1x1", 1, 6, 18, 5, 4, 1, Conv2dGeometry::same(1)},
      {"downsample pad right/bottom, stride 2", 2, 4, 8, 10, 7, 3, {2, 0, 0, 1, 1}},
      {"3x3 wide channels", 1, 48, 32, 8, 8, 3, Conv2dGeometry::same(3)},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    Tensor x = random_tensor({c.B, c.I, c.H, c.W}, seed++);  // [B, I, H, W]
    Tensor w = random_tensor({c.O, c.I, c.k, c.k}, seed++);  // [O, I, k, k]
    Tensor b = random_tensor({c.O}, seed++);                 // [O]
    Conv2d conv(w, b, c.geo);
    Tensor want = naive_conv2d(x, w, b, c.geo);
    Tensor got = conv.forward(x);
    const double err = max_abs_diff(got, want);
    EXPECT_LE(err, 1e-4) << c.name << ": max abs err " << err << " shape " << shape_str(got.shape());
    // A second shape through the same layer (another cached primitive), then the first again.
    Tensor x2 = random_tensor({1, c.I, c.H + 2, c.W + 1}, seed++);  // [1, I, H+2, W+1]
    EXPECT_LE(max_abs_diff(conv.forward(x2), naive_conv2d(x2, w, b, c.geo)), 1e-4) << c.name;
    EXPECT_LE(max_abs_diff(conv.forward(x), want), 1e-4) << c.name;
  }
}

TEST(Conv2d, AccumulateAddsOntoOutput) {
  Tensor x = random_tensor({1, 8, 6, 6}, 11);    // [1, 8, 6, 6]
  Tensor w = random_tensor({8, 8, 3, 3}, 12);    // [8, 8, 3, 3]
  Tensor b = random_tensor({8}, 13);             // [8]
  Tensor res = random_tensor({1, 8, 6, 6}, 14);  // [1, 8, 6, 6]
  Conv2d conv(w, b, Conv2dGeometry::same(3));
  Tensor y = res.clone();  // [1, 8, 6, 6]
  conv.forward_accumulate(x, y);
  Tensor want = naive_conv2d(x, w, b, Conv2dGeometry::same(3));
  for (int64_t i = 0; i < want.numel(); ++i) want.data<float>()[i] += res.data<float>()[i];
  EXPECT_LE(max_abs_diff(y, want), 1e-4);
}

TEST(Conv2d, RejectsBadShapes) {
  Conv2d conv(random_tensor({4, 3, 3, 3}, 1), random_tensor({4}, 2), Conv2dGeometry::same(3));
  EXPECT_THROW(conv.forward(random_tensor({1, 5, 8, 8}, 3)), Error);
  EXPECT_THROW(Conv2d(random_tensor({4, 3, 3, 3}, 1), random_tensor({5}, 2), Conv2dGeometry::same(3)), Error);
  Tensor y = Tensor::empty(DType::f32, {1, 4, 7, 7});  // wrong output size
  EXPECT_THROW(conv.forward_accumulate(random_tensor({1, 3, 8, 8}, 3), y), Error);
}

}  // namespace
}  // namespace varcode::kernels::cpu
