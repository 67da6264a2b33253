#include "kernels/cpu/silu.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace varcode::kernels::cpu {

namespace {

// exp(x) for x in [-87, 87] to ~2 ulp (Cody-Waite reduction, Cephes polynomial), written so that
// the loops below vectorise: libm's expf is a call per element and was ~7% of a 256 px decode.
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

}  // namespace

void silu_inplace(float* x, int64_t n) {
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
