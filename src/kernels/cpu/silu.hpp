// SiLU(x) = x * sigmoid(x), computed as x / (1 + exp(-x)) like PyTorch.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/fast_math.hpp"
#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// SiLU of one value, the formula silu_inplace uses.
inline float silu_value(float x) { return x / (1.0f + exp_approx(-x)); }

// In place on n contiguous floats (single-threaded: callers parallelise over rows).
void silu_inplace(float* x, int64_t n);
// In place on a whole f32 tensor (parallel).
void silu_inplace(Tensor& x);

}  // namespace varcode::kernels::cpu
