// The AVX512-BF16 micro-kernel shared by the bf16 GEMM (gemm_bf16.cpp) and the bf16 attention
// (attention_bf16.cpp): C[MR, NR * 16] (+)= A[MR, 2 * kpairs] B, with B a panel block laid out as
// [kpairs][NR * 16][2] bf16 so that one vdpbf16ps multiplies a broadcast pair of A's row into 16
// columns. Internal to the CPU kernels; every function here may only run where
// Bf16Gemm::supported().
#pragma once
#include <array>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() (a self-initialised variable),
// which -Wmaybe-uninitialized reports once inlined here: a known false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define VARCODE_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#endif

namespace varcode::kernels::cpu::bf16 {

constexpr int64_t kNr = 4;            // zmm (16 columns each) per panel
constexpr int64_t kPanel = kNr * 16;  // columns per panel
constexpr int64_t kMr = 6;            // rows per micro-tile

#if defined(__x86_64__)
// One micro-tile's operands.
struct Tile {
  const uint16_t* a;  // [MR, lda] bf16 rows of x, at the block's first K pair
  int64_t lda;        // elements between rows of a
  const uint16_t* b;  // [kpairs][NR * 16][2] bf16: the panel's block
  int64_t kpairs;
  float* c;  // [MR, ldc] f32 output at the panel's first column
  int64_t ldc;
  const float* bias;  // [NR * 16] at the panel's first column, or null
  __mmask16 tail;     // valid lanes of the last 16-column group (N tail)
  bool first, last, gelu;
  // Software prefetch into L2 of the weights the caller needs next: pf_lines cache lines from pf
  // per k step, up to pf_end. Those weights come from DRAM, and without it the first row block
  // of every panel block waits for them (measured: the drafter's scales of 18-128 rows ran at
  // 230-270 GFLOP/s against ~350 at 200 rows).
  const char* pf = nullptr;
  const char* pf_end = nullptr;
  int pf_lines = 0;
};

// exp(z) for the GELU epilogue: the Cody-Waite reduction and polynomial of exp_approx
// (fast_math.hpp), with the 2^n scaling done by vscalefps.
VARCODE_AVX512BF16 inline __m512 exp512(__m512 z) {
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
VARCODE_AVX512BF16 inline __m512 gelu512(__m512 x) {
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 u =
      _mm512_mul_ps(x, _mm512_fmadd_ps(x2, _mm512_set1_ps(0.7978845608f * 0.044715f), _mm512_set1_ps(0.7978845608f)));
  const __m512 e = exp512(_mm512_mul_ps(u, _mm512_set1_ps(-2.0f)));
  return _mm512_div_ps(x, _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}

template <int MR, int NR>
VARCODE_AVX512BF16 void micro(const Tile& t) {
  __m512 acc[MR][NR];
  __mmask16 mask[NR];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) mask[j] = j == NR - 1 ? t.tail : static_cast<__mmask16>(0xffff);
  if (t.first) {
    // The first K block starts from the bias (or zero); later blocks from the partial sums.
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m512 b0 = t.bias ? _mm512_maskz_loadu_ps(mask[j], t.bias + 16 * j) : _mm512_setzero_ps();
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] = b0;
    }
  } else {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_maskz_loadu_ps(mask[j], t.c + i * t.ldc + 16 * j);
  }
  const uint16_t* b = t.b;  // [kpairs][NR * 16][2]
  const uint16_t* a = t.a;  // [MR, lda]
  const char* pf = t.pf;
  for (int64_t kk = 0; kk < t.kpairs; ++kk, b += NR * 32, a += 2) {
    for (int l = 0; l < t.pf_lines && pf < t.pf_end; ++l, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    __m512i bv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) bv[j] = _mm512_loadu_si512(b + 32 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t pair;  // x[i, 2kk], x[i, 2kk + 1]: one dword broadcast to every column lane
      std::memcpy(&pair, a + i * t.lda, 4);
      const __m512i av = _mm512_set1_epi32(pair);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)av, (__m512bh)bv[j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m512 v = t.last && t.gelu ? gelu512(acc[i][j]) : acc[i][j];
      _mm512_mask_storeu_ps(t.c + i * t.ldc + 16 * j, mask[j], v);
    }
}

using MicroFn = void (*)(const Tile&);

template <int MR>
constexpr std::array<MicroFn, kNr> micro_row() {
  return {&micro<MR, 1>, &micro<MR, 2>, &micro<MR, 3>, &micro<MR, 4>};
}
// [rows - 1][16-column groups - 1]: the tails of M and N get their own unrolled kernels.
inline constexpr std::array<std::array<MicroFn, kNr>, kMr> kMicro = {micro_row<1>(), micro_row<2>(), micro_row<3>(),
                                                                     micro_row<4>(), micro_row<5>(), micro_row<6>()};

// The unrolled kernel for `rows` (1..kMr) rows and `groups` (1..kNr) 16-column groups.
inline void micro_tile(int64_t rows, int64_t groups, const Tile& t) {
  kMicro[static_cast<size_t>(rows - 1)][static_cast<size_t>(groups - 1)](t);
}
#endif

}  // namespace varcode::kernels::cpu::bf16
