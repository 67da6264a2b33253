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
#include "kernels/cpu/avx512_math.hpp"
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
