// The AVX-512F micro-kernel shared by the f32 GEMM (gemm_f32.cpp) and the f32 attention
// (attention.cpp): C[MR, NR * 16] (+)= A[MR, kc] B, B read as kc steps of NR * 16 columns at
// stride ldb, one broadcast of A's element per row and step. Internal to the CPU kernels; every
// function here may only run where F32Gemm::supported().
#pragma once
#include <array>
#include <cstdint>

#if defined(__x86_64__)
#include "kernels/cpu/avx512_math.hpp"
#endif

namespace varcode::kernels::cpu::f32 {

constexpr int64_t kNr = 4;            // zmm (16 columns each) per panel
constexpr int64_t kPanel = kNr * 16;  // columns per panel
constexpr int64_t kMr = 6;            // rows per micro-tile

#if defined(__x86_64__)
// One micro-tile's operands.
struct Tile {
  const float* a;  // [MR, lda] rows of x, at the block's first k
  int64_t lda;     // elements between rows of a
  const float* b;  // [kc][ldb]: the panel's block (NR * 16 columns per k step)
  int64_t kc;
  float* c;  // [MR, ldc] output at the panel's first column
  int64_t ldc;
  const float* bias;  // [NR * 16] at the panel's first column, or null
  __mmask16 tail;     // valid lanes of the last 16-column group (N tail)
  bool first, last, gelu;
  int64_t ldb = 0;  // elements between k steps of b: the packed panel's width (groups x 16), or a cache's stride
};

template <int MR, int NR>
VARCODE_AVX512F void micro(const Tile& t) {
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
  const float* b = t.b;  // [kc][NR * 16]
  const float* a = t.a;  // [MR, lda]
  for (int64_t kk = 0; kk < t.kc; ++kk, b += t.ldb, ++a) {
    __m512 bv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) bv[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * t.lda]);  // x[i, k] in every column lane
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
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

}  // namespace varcode::kernels::cpu::f32
