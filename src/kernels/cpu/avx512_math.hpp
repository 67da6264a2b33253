// AVX-512F helpers shared by the hand-written GEMMs (gemm_bf16.cpp, gemm_f32.cpp): the GELU-tanh
// epilogue and its exp. Internal: include only from files whose callers are built for AVX-512 (a
// target attribute that includes avx512f) and that check the CPU at run time before calling.
#pragma once

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() (a self-initialised variable),
// which -Wmaybe-uninitialized reports once inlined into the kernels: a known false positive. The
// including file gets this too, on purpose: its kernels inline the same intrinsics.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>
#include <cstdint>

// The least a helper here needs; callers' attributes are supersets, so the helpers inline.
#define VARCODE_AVX512F __attribute__((target("avx512f")))

namespace varcode::kernels::cpu {

// exp(z) for the GELU epilogue: the Cody-Waite reduction and polynomial of exp_approx
// (fast_math.hpp), with the 2^n scaling done by vscalefps.
VARCODE_AVX512F inline __m512 exp512(__m512 z) {
  z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), z);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 e = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(e, n);
}

// GELU-tanh as x * sigmoid(2u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3): the
// same function as 0.5 x (1 + tanh u) without the cancellation of 1 + tanh near -1.
VARCODE_AVX512F inline __m512 gelu512(__m512 x) {
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 u =
      _mm512_mul_ps(x, _mm512_fmadd_ps(x2, _mm512_set1_ps(0.7978845608f * 0.044715f), _mm512_set1_ps(0.7978845608f)));
  const __m512 e = exp512(_mm512_mul_ps(u, _mm512_set1_ps(-2.0f)));
  return _mm512_div_ps(x, _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}

// The first min(count, 16) lanes (count >= 1): the valid part of a 16-float step over a row.
inline __mmask16 first_lanes(int64_t count) { return static_cast<__mmask16>(count >= 16 ? 0xffff : (1u << count) - 1); }

// Rows [0, nq) of scores [nq, ld] (n valid) -> softmax weights in place (the attention kernels).
VARCODE_AVX512F inline void softmax_rows(float* scores, int64_t ld, int64_t nq, int64_t n) {
  for (int64_t i = 0; i < nq; ++i) {
    float* s = scores + i * ld;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 valid = first_lanes(n - j);
      mx = _mm512_mask_max_ps(mx, valid, mx, _mm512_maskz_loadu_ps(valid, s + j));
    }
    const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 valid = first_lanes(n - j);
      const __m512 e = _mm512_maskz_mov_ps(valid, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(valid, s + j), mv)));
      sum = _mm512_add_ps(sum, e);
      _mm512_mask_storeu_ps(s + j, valid, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 valid = first_lanes(n - j);
      _mm512_mask_storeu_ps(s + j, valid, _mm512_mul_ps(_mm512_maskz_loadu_ps(valid, s + j), inv));
    }
  }
}

}  // namespace varcode::kernels::cpu
#endif
