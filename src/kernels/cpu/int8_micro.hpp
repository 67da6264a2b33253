// The AVX512-VNNI micro-kernel of the int8 GEMM (gemm_int8.cpp): C[MR, NR * 16] (+)= A[MR, 4 *
// kquads] B in int32, A u8 and B s8, with B a panel block laid out as [kquads][NR * 16][4] so that
// one vpdpbusd multiplies a broadcast quad of A's row into 16 columns (4 products each, summed into
// the column's int32 lane). Internal to the CPU kernels; every function here may only run where
// Int8Gemm::supported().
#pragma once
#include <array>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include "kernels/cpu/avx512_math.hpp"
#define VARCODE_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#endif

namespace varcode::kernels::cpu::int8 {

constexpr int64_t kNr = 4;            // zmm (16 columns each) per panel
constexpr int64_t kPanel = kNr * 16;  // columns per panel
constexpr int64_t kMr = 6;            // rows per micro-tile

#if defined(__x86_64__)
// One micro-tile's operands. The int32 partial sums of a K block are kept in C's own memory
// (int32 bits in the f32 output) between blocks, and turned into f32 by the last block.
struct Tile {
  const uint8_t* a;  // [MR, lda] u8 rows of x, at the block's first K quad
  int64_t lda;       // bytes between rows of a
  const int8_t* b;   // [kquads][NR * 16][4] s8: the panel's block
  int64_t kquads;
  float* c;  // [MR, ldc] output at the panel's first column (int32 partial sums between blocks)
  int64_t ldc;
  // Dequantisation (last block): y = float(acc - zero[i] * colsum[j]) * (row_scale[i] * w_scale[j])
  // + bias[j], then GELU-tanh if gelu. The zero-point term starts the first block's accumulators.
  const float* row_scale;   // [MR] activation scale per row
  const int32_t* row_zero;  // [MR] activation zero point per row
  const int32_t* colsum;    // [NR * 16] sum over K of the column's s8 weights
  const float* w_scale;     // [NR * 16] weight scale per column
  const float* bias;        // [NR * 16] or null
  __mmask16 tail;           // valid lanes of the last 16-column group (N tail)
  bool first, last, gelu;
  bool raw = false;  // tests: store the bare int32 sums of A x B (no zero point, no dequantisation)
  // Software prefetch into L2 of the weights the caller needs next (as the bf16 kernel does):
  // pf_lines cache lines from pf per k step, up to pf_end.
  const char* pf = nullptr;
  const char* pf_end = nullptr;
  int pf_lines = 0;
};

// acc += a (u8) . b (s8) per int32 lane, as _mm512_dpbusd_epi32. Written as inline assembly
// because GCC 12 spills the 24 accumulators of micro<6, 4> to the stack around the intrinsic's
// builtin (vpdpbusd reads and writes its destination), which ran the kernel at ~40% of the
// instruction's peak; with the register tied by "+v" they stay in zmm registers.
VARCODE_AVX512VNNI inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}

template <int MR, int NR>
VARCODE_AVX512VNNI void micro(const Tile& t) {
  __m512i acc[MR][NR];
  __mmask16 mask[NR];
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) mask[j] = j == NR - 1 ? t.tail : static_cast<__mmask16>(0xffff);
  if (t.first) {
    // acc = -zero * colsum: the u8 codes are x / scale + zero, so sum(a w) carries zero * sum(w).
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const __m512i cs = t.raw ? _mm512_setzero_si512() : _mm512_loadu_si512(t.colsum + 16 * j);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] = t.raw ? cs : _mm512_mullo_epi32(_mm512_set1_epi32(-t.row_zero[i]), cs);
    }
  } else {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_maskz_loadu_epi32(mask[j], t.c + i * t.ldc + 16 * j);
  }
  const int8_t* b = t.b;   // [kquads][NR * 16][4]
  const uint8_t* a = t.a;  // [MR, lda]
  const char* pf = t.pf;
  for (int64_t kq = 0; kq < t.kquads; ++kq, b += NR * 64, a += 4) {
    for (int l = 0; l < t.pf_lines && pf < t.pf_end; ++l, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    __m512i bv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) bv[j] = _mm512_loadu_si512(b + 64 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t quad;  // x[i, 4kq .. 4kq + 3] as u8: one dword broadcast to every column lane
      std::memcpy(&quad, a + i * t.lda, 4);
      const __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = dpbusd(acc[i][j], av, bv[j]);
    }
  }
  if (!t.last || t.raw) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) _mm512_mask_storeu_epi32(t.c + i * t.ldc + 16 * j, mask[j], acc[i][j]);
    return;
  }
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    const __m512 ws = _mm512_loadu_ps(t.w_scale + 16 * j);
    const __m512 bias = t.bias ? _mm512_maskz_loadu_ps(mask[j], t.bias + 16 * j) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 s = _mm512_mul_ps(_mm512_set1_ps(t.row_scale[i]), ws);
      __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][j]), s, bias);
      if (t.gelu) v = gelu512(v);
      _mm512_mask_storeu_ps(t.c + i * t.ldc + 16 * j, mask[j], v);
    }
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

}  // namespace varcode::kernels::cpu::int8
