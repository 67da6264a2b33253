#include "kernels/reference/group_norm.hpp"

#include <cmath>
#include <vector>

#include "kernels/cpu/silu.hpp"

namespace varcode::kernels::cpu {

void group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps, bool fuse_silu,
                Tensor& y) {
  if (x.dtype() != DType::f32 || x.ndim() != 4)
    throw Error("group_norm: input must be f32 [B, C, H, W], got " + shape_str(x.shape()));
  const int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  if (groups <= 0 || C % groups != 0)
    throw Error("group_norm: " + std::to_string(C) + " channels do not split into " + std::to_string(groups) +
                " groups");
  if (gamma.shape() != Shape{C} || beta.shape() != Shape{C} || gamma.dtype() != DType::f32 ||
      beta.dtype() != DType::f32)
    throw Error("group_norm: gamma and beta must be f32 [" + std::to_string(C) + "]");
  if (y.shape() != x.shape() || y.dtype() != DType::f32)
    throw Error("group_norm: output must be f32 " + shape_str(x.shape()) + ", got " + shape_str(y.shape()));

  const int64_t cpg = C / groups;
  const int64_t group_size = cpg * HW;
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const float* g = gamma.data<float>();
  const float* b = beta.data<float>();

  // Two-pass statistics in double: as exact as PyTorch's, whatever the group size.
  std::vector<float> mean(static_cast<size_t>(B * groups)), rstd(static_cast<size_t>(B * groups));
#pragma omp parallel for schedule(static)
  for (int64_t bg = 0; bg < B * groups; ++bg) {
    const float* p = xp + bg * group_size;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < group_size; ++i) sum += p[i];
    const double m = sum / static_cast<double>(group_size);
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < group_size; ++i) {
      const double d = p[i] - m;
      sq += d * d;
    }
    const double var = sq / static_cast<double>(group_size);
    mean[static_cast<size_t>(bg)] = static_cast<float>(m);
    rstd[static_cast<size_t>(bg)] = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
  }

#pragma omp parallel for schedule(static)
  for (int64_t bc = 0; bc < B * C; ++bc) {
    const int64_t bi = bc / C, c = bc % C;
    const size_t bg = static_cast<size_t>(bi * groups + c / cpg);
    // PyTorch folds the statistics into one scale and shift per channel.
    const float scale = rstd[bg] * g[c];
    const float shift = b[c] - scale * mean[bg];
    const float* p = xp + bc * HW;
    float* q = yp + bc * HW;
#pragma omp simd
    for (int64_t i = 0; i < HW; ++i) q[i] = p[i] * scale + shift;
    if (fuse_silu) silu_inplace(q, HW);
  }
}

Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps, bool fuse_silu) {
  Tensor y = Tensor::empty(DType::f32, x.shape());  // [B, C, H, W]
  group_norm(x, gamma, beta, groups, eps, fuse_silu, y);
  return y;
}

}  // namespace varcode::kernels::cpu
