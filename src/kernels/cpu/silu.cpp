#include "kernels/cpu/silu.hpp"

#include "kernels/cpu/fast_math.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace varcode::kernels::cpu {

VARCODE_SIMD_CLONES void silu_inplace(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + exp_approx(-x[i]));
}

void silu_inplace(Tensor& x) {
  if (x.dtype() != DType::f32) throw Error("silu: expected an f32 tensor");
  float* p = x.data<float>();
  const int64_t n = x.numel();
  constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for schedule(static)
  for (int64_t begin = 0; begin < n; begin += kChunk) silu_inplace(p + begin, std::min(kChunk, n - begin));
}

}  // namespace varcode::kernels::cpu
