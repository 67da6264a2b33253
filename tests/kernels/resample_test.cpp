#include "kernels/cpu/resample.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/reference/upsample_nearest.hpp"
#include "kernels/kernel_test_util.hpp"

namespace varcode::kernels::cpu {
namespace {

using varcode::testing::max_abs_diff;
using varcode::testing::random_tensor;

// Spec §4.2, in double, written from the formulas (no attempt at PyTorch's rounding order).
double cubic_weight(double d) {
  const double A = -0.75;
  d = std::fabs(d);
  if (d <= 1) return ((A + 2) * d - (A + 3)) * d * d + 1;
  if (d < 2) return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A;
  return 0;
}

Tensor naive_bicubic(const Tensor& x, int out_h, int out_w) {
  const int64_t planes = x.dim(0) * x.dim(1), in_h = x.dim(2), in_w = x.dim(3);
  Tensor y = Tensor::empty(DType::f32, {x.dim(0), x.dim(1), out_h, out_w});  // [B, C, out_h, out_w]
  for (int64_t p = 0; p < planes; ++p)
    for (int oy = 0; oy < out_h; ++oy)
      for (int ox = 0; ox < out_w; ++ox) {
        const double sy = (oy + 0.5) * static_cast<double>(in_h) / out_h - 0.5;
        const double sx = (ox + 0.5) * static_cast<double>(in_w) / out_w - 0.5;
        const int64_t y0 = static_cast<int64_t>(std::floor(sy)), x0 = static_cast<int64_t>(std::floor(sx));
        double acc = 0;
        for (int64_t i = y0 - 1; i <= y0 + 2; ++i)
          for (int64_t j = x0 - 1; j <= x0 + 2; ++j) {
            const int64_t ci = std::clamp<int64_t>(i, 0, in_h - 1), cj = std::clamp<int64_t>(j, 0, in_w - 1);
            acc += cubic_weight(sy - static_cast<double>(i)) * cubic_weight(sx - static_cast<double>(j)) *
                   x.data<float>()[(p * in_h + ci) * in_w + cj];
          }
        y.data<float>()[(p * out_h + oy) * out_w + ox] = static_cast<float>(acc);
      }
  return y;
}

Tensor naive_area(const Tensor& x, int out_h, int out_w) {
  const int64_t planes = x.dim(0) * x.dim(1), in_h = x.dim(2), in_w = x.dim(3);
  Tensor y = Tensor::empty(DType::f32, {x.dim(0), x.dim(1), out_h, out_w});  // [B, C, out_h, out_w]
  for (int64_t p = 0; p < planes; ++p)
    for (int oy = 0; oy < out_h; ++oy)
      for (int ox = 0; ox < out_w; ++ox) {
        const int64_t h0 = static_cast<int64_t>(std::floor(oy * static_cast<double>(in_h) / out_h));
        const int64_t h1 = static_cast<int64_t>(std::ceil((oy + 1) * static_cast<double>(in_h) / out_h));
        const int64_t w0 = static_cast<int64_t>(std::floor(ox * static_cast<double>(in_w) / out_w));
        const int64_t w1 = static_cast<int64_t>(std::ceil((ox + 1) * static_cast<double>(in_w) / out_w));
        double acc = 0;
        for (int64_t i = h0; i < h1; ++i)
          for (int64_t j = w0; j < w1; ++j) acc += x.data<float>()[(p * in_h + i) * in_w + j];
        y.data<float>()[(p * out_h + oy) * out_w + ox] =
            static_cast<float>(acc / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
  return y;
}

TEST(Resample, BicubicUpMatchesFormula) {
  const int sizes[][4] = {{3, 3, 16, 16}, {10, 10, 13, 13}, {1, 1, 16, 16}, {2, 5, 16, 13}, {16, 16, 13, 13}};
  uint32_t seed = 1;
  for (const auto& s : sizes) {
    Tensor x = random_tensor({2, 3, s[0], s[1]}, seed++);  // [2, 3, h, w]
    Tensor got = bicubic_up(x, s[2], s[3]);
    const double err = max_abs_diff(got, naive_bicubic(x, s[2], s[3]));
    EXPECT_LE(err, 5e-6) << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3] << ": max abs err " << err;
  }
}

TEST(Resample, BicubicOfOnePixelIsConstant) {
  // The taps all clamp onto the single input and the weights sum to one.
  Tensor x = random_tensor({1, 2, 1, 1}, 3);  // [1, 2, 1, 1]
  Tensor y = bicubic_up(x, 16, 16);           // [1, 2, 16, 16]
  for (int64_t i = 0; i < 256; ++i) EXPECT_NEAR(y.data<float>()[i], x.data<float>()[0], 1e-6);
}

TEST(Resample, AreaDownMatchesFormula) {
  const int sizes[][4] = {{16, 16, 13, 13}, {16, 16, 1, 1},   {16, 16, 10, 10}, {32, 32, 9, 9},
                          {7, 5, 3, 2},     {16, 16, 16, 16}, {10, 10, 13, 13}, {3, 3, 16, 16}};
  uint32_t seed = 10;
  for (const auto& s : sizes) {
    Tensor x = random_tensor({2, 3, s[0], s[1]}, seed++);  // [2, 3, h, w]
    Tensor got = area_down(x, s[2], s[3]);
    const double err = max_abs_diff(got, naive_area(x, s[2], s[3]));
    EXPECT_LE(err, 1e-6) << s[0] << "x" << s[1] << " -> " << s[2] << "x" << s[3] << ": max abs err " << err;
  }
}

TEST(Resample, AreaDownIdentityIsExact) {
  Tensor x = random_tensor({1, 4, 16, 16}, 20);  // [1, 4, 16, 16]
  EXPECT_EQ(max_abs_diff(area_down(x, 16, 16), x), 0.0);
}

TEST(Resample, NearestUpsample) {
  Tensor x = random_tensor({2, 3, 3, 5}, 21);  // [2, 3, 3, 5]
  Tensor y = upsample_nearest2x(x);            // [2, 3, 6, 10]
  ASSERT_EQ(y.shape(), (Shape{2, 3, 6, 10}));
  for (int64_t p = 0; p < 6; ++p)
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t j = 0; j < 10; ++j)
        EXPECT_EQ(y.data<float>()[(p * 6 + i) * 10 + j], x.data<float>()[(p * 3 + i / 2) * 5 + j / 2]);
}

}  // namespace
}  // namespace varcode::kernels::cpu
