// SiLU(x) = x * sigmoid(x), computed as x / (1 + exp(-x)) like PyTorch.
#pragma once
#include <cstdint>

#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// In place on n contiguous floats (single-threaded: callers parallelise over rows).
void silu_inplace(float* x, int64_t n);
// In place on a whole f32 tensor (parallel).
void silu_inplace(Tensor& x);

}  // namespace varcode::kernels::cpu
