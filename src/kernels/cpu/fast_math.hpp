// Small vectorisable math shared by the CPU kernels, and the ISA dispatch attribute.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

// Hot loops are compiled for AVX-512, AVX2 and the portable baseline; the loader picks the best
// one for the CPU at run time (GCC/Clang function multi-versioning; not under the sanitizers,
// whose runtimes are not up yet when the loader runs the ifunc resolvers).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    !defined(VARCODE_NO_CLONES)
#define VARCODE_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VARCODE_SIMD_CLONES
#endif

namespace varcode::kernels::cpu {

// exp(x) for x in [-87, 87] to ~2 ulp (Cody-Waite reduction and a degree-6 polynomial), written
// so that loops over it vectorise; libm's expf is a call per element.
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

// f32 -> bf16, round to nearest even, for finite values (activations): no NaN branch, so loops over
// it vectorise. varcode::f32_to_bf16 (tensor.hpp) is the general one.
inline uint16_t bf16_round_finite(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace varcode::kernels::cpu
