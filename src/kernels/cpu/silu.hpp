// SiLU(x) = x * sigmoid(x), computed as x / (1 + exp(-x)) like PyTorch.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// exp(x) for x in [-87, 87] to ~2 ulp (Cody-Waite reduction, Cephes polynomial), written so that
// the loops calling it vectorise: libm's expf is a call per element and was ~7% of a 256 px decode.
// Inline in the header so that the ISA-specific clones of fused kernels (GroupNorm + SiLU) inline it.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 87.0f);
  // Round x / ln 2 to the nearest integer with the 1.5 * 2^23 trick (no floor/round call needed).
  const float shifter = 12582912.0f;
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  int32_t ti;
  std::memcpy(&ti, &t, 4);
  const int32_t bits = (ti - 0x4B400000 + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, 4);
  return e * scale;
}

// SiLU of one value, the formula silu_inplace uses.
inline float silu_value(float x) { return x / (1.0f + exp_approx(-x)); }


// In place on n contiguous floats (single-threaded: callers parallelise over rows).
void silu_inplace(float* x, int64_t n);
// In place on a whole f32 tensor (parallel).
void silu_inplace(Tensor& x);

}  // namespace varcode::kernels::cpu
