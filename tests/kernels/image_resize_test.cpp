#include "kernels/cpu/image_resize.hpp"

#include <gtest/gtest.h>

#include "kernels/kernel_test_util.hpp"

namespace varcode::kernels::cpu {
namespace {

using varcode::testing::max_abs_diff;
using varcode::testing::random_tensor;

TEST(ImageResize, CenterCrop) {
  Tensor x = random_tensor({3, 5, 8}, 1);  // [3, 5, 8]
  Tensor y = center_crop_square(x);        // [3, 5, 5]
  ASSERT_EQ(y.shape(), (Shape{3, 5, 5}));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t j = 0; j < 5; ++j)
        EXPECT_EQ(y.data<float>()[(c * 5 + r) * 5 + j], x.data<float>()[(c * 5 + r) * 8 + j + 1]);
}

TEST(ImageResize, AreaIntegerRatioIsBlockMean) {
  Tensor x = random_tensor({2, 6, 9}, 2);  // [2, 6, 9]
  Tensor y = resize_area(x, 2, 3);         // [2, 2, 3]
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j) {
        double s = 0;
        for (int64_t a = 0; a < 3; ++a)
          for (int64_t b = 0; b < 3; ++b) s += x.data<float>()[(c * 6 + i * 3 + a) * 9 + j * 3 + b];
        EXPECT_NEAR(y.data<float>()[(c * 2 + i) * 3 + j], s / 9, 1e-6);
      }
}

TEST(ImageResize, AreaFractionalRatioKeepsMeanAndConstants) {
  Tensor x = random_tensor({1, 10, 10}, 3, 0.0f, 1.0f);  // [1, 10, 10]
  Tensor y = resize_area(x, 3, 3);                       // [1, 3, 3]
  double mx = 0, my = 0;
  for (int64_t i = 0; i < 100; ++i) mx += x.data<float>()[i] / 100.0;
  for (int64_t i = 0; i < 9; ++i) my += y.data<float>()[i] / 9.0;
  EXPECT_NEAR(mx, my, 1e-6);                        // equal-area outputs: the mean is preserved exactly
  Tensor c = Tensor::empty(DType::f32, {1, 7, 7});  // [1, 7, 7]
  for (int64_t i = 0; i < 49; ++i) c.data<float>()[i] = 0.25f;
  Tensor d = resize_area(c, 3, 3);
  for (int64_t i = 0; i < 9; ++i) EXPECT_NEAR(d.data<float>()[i], 0.25f, 1e-7);
}

TEST(ImageResize, FitSquareShapesAndRange) {
  EXPECT_EQ(fit_square(random_tensor({3, 40, 60}, 4, 0.0f, 1.0f), 16, 0.0f, 1.0f).shape(), (Shape{3, 16, 16}));
  Tensor up = fit_square(random_tensor({3, 7, 9}, 5, 0.0f, 1.0f), 16, 0.0f, 1.0f);  // [3, 16, 16]
  ASSERT_EQ(up.shape(), (Shape{3, 16, 16}));
  for (int64_t i = 0; i < up.numel(); ++i) {
    EXPECT_GE(up.data<float>()[i], 0.0f);
    EXPECT_LE(up.data<float>()[i], 1.0f);
  }
  Tensor same = random_tensor({3, 16, 16}, 6);
  EXPECT_EQ(max_abs_diff(fit_square(same, 16, -1.0f, 1.0f), same), 0.0);
}

}  // namespace
}  // namespace varcode::kernels::cpu
