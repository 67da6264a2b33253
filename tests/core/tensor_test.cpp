#include "varcode/tensor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace varcode {

TEST(Tensor, ShapeAndConversions) {
  Tensor t = Tensor::zeros(DType::f32, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dim(-1), 3);
  t.data<float>()[4] = 1.5f;
  Tensor b = t.to(DType::bf16);
  EXPECT_EQ(b.dtype(), DType::bf16);
  Tensor back = b.to(DType::f32);
  EXPECT_FLOAT_EQ(back.data<float>()[4], 1.5f);
  EXPECT_THROW(t.reshape({4}), Error);
  EXPECT_EQ(t.reshape({3, 2}).dim(0), 3);
}

TEST(Tensor, NumelOverflowIsAnError) {
  EXPECT_THROW(shape_numel({1LL << 40, 1LL << 40}), Error);
  EXPECT_THROW(shape_numel({-1}), Error);
}

TEST(Tensor, HalfPrecisionRoundTrip) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1e-5f, 1e-7f}) {
    EXPECT_NEAR(f16_to_f32(f32_to_f16(v)), v, std::fabs(v) * 1e-3 + 1e-7) << v;
  }
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);  // ties to even
  EXPECT_EQ(f32_to_bf16(3.0f), 0x4040);
}

}  // namespace varcode
