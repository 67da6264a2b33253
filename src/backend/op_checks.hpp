// Argument contracts of the seam's operations that every backend enforces the same way, written
// once so that the CPU and the GPU refuse the same calls with the same words.
#pragma once
#include <string>

#include "varcode/tensor.hpp"

namespace varcode::backend {

inline bool is_f32_or_bf16(const Tensor& t) { return t.dtype() == DType::f32 || t.dtype() == DType::bf16; }

// Backend::group_norm_nhwc: x [B, H, W, C] f32 or bf16, gamma and beta f32 [C], C split into
// `groups`, y of x's shape (f32 or bf16; x's dtype when it aliases x).
inline void check_group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups,
                                  const Tensor& y) {
  if (!is_f32_or_bf16(x) || x.ndim() != 4)
    throw Error("group_norm_nhwc: input must be f32 or bf16 [B, H, W, C], got " + shape_str(x.shape()));
  const int64_t C = x.dim(3);
  if (groups <= 0 || C % groups != 0)
    throw Error("group_norm_nhwc: " + std::to_string(C) + " channels do not split into " + std::to_string(groups) +
                " groups");
  if (gamma.shape() != Shape{C} || beta.shape() != Shape{C} || gamma.dtype() != DType::f32 ||
      beta.dtype() != DType::f32)
    throw Error("group_norm_nhwc: gamma and beta must be f32 [" + std::to_string(C) + "]");
  if (y.shape() != x.shape() || !is_f32_or_bf16(y))
    throw Error("group_norm_nhwc: output must be " + shape_str(x.shape()) + ", got " + shape_str(y.shape()));
  if (y.raw() == x.raw() && y.dtype() != x.dtype())
    throw Error("group_norm_nhwc: an output aliasing the input must have its dtype");
}

}  // namespace varcode::backend
