#include "kernels/reference/upsample_nearest.hpp"

namespace varcode::kernels::cpu {

Tensor upsample_nearest2x(const Tensor& x) {
  if (x.dtype() != DType::f32 || x.ndim() != 4)
    throw Error("upsample_nearest2x: input must be f32 [B, C, H, W], got " + shape_str(x.shape()));
  const int64_t planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
  Tensor y = Tensor::empty(DType::f32, {x.dim(0), x.dim(1), 2 * h, 2 * w});  // [B, C, 2H, 2W]
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < planes * h; ++row) {
    const float* src = xp + row * w;
    float* dst0 = yp + row * 4 * w;  // output rows 2r and 2r+1 of the same plane are adjacent
    float* dst1 = dst0 + 2 * w;
    for (int64_t j = 0; j < w; ++j) {
      dst0[2 * j] = dst0[2 * j + 1] = src[j];
    }
    for (int64_t j = 0; j < 2 * w; ++j) dst1[j] = dst0[j];
  }
  return y;
}

}  // namespace varcode::kernels::cpu
