// The 256-bit micro-kernel of the int8 GEMM (gemm_int8.cpp), for CPUs with AVX-VNNI but not
// AVX512-VNNI: C[MR, 16] (+)= A[MR, 4 * kquads] B in int32 over one 16-column group of a panel,
// on the zmm kernel's packed layout ([kquads][width][4], int8_micro.hpp) and Tile. Written once
// and instantiated twice, on the encoding of vpdpbusd ymm: VexDot (AVX-VNNI), which is what such
// CPUs run, and EvexDot (AVX512-VNNI + AVX512VL), which runs the same code on CPUs without
// AVX-VNNI, so that the kernel is tested bit for bit where the VEX form cannot run. Everything
// else in the kernel is AVX2 + FMA: no AVX-512 instruction, whichever instantiation. Internal to
// the CPU kernels; a Dot instantiation may only run where its instruction does
// (int8_isa_runs_here).
#pragma once
#include <array>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/int8_micro.hpp"

#if defined(__x86_64__)
#include <immintrin.h>

#define VARCODE_AVX2_FMA __attribute__((target("avx2,fma")))

namespace varcode::kernels::cpu::int8::ymm {

// acc += a (u8) . b (s8) per int32 lane. Inline assembly, as in the zmm kernel (GCC 12 spills
// accumulators around the builtin), with the encoding spelt out; registers ymm0-15 ("x") in both,
// since VEX cannot name ymm16-31 and the two instantiations are to be the same code.
struct VexDot {
  VARCODE_AVX2_FMA static __m256i dot(__m256i acc, __m256i a, __m256i b) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
  }
};
struct EvexDot {
  VARCODE_AVX2_FMA static __m256i dot(__m256i acc, __m256i a, __m256i b) {
    __asm__("%{evex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
  }
};

// exp512 (avx512_math.hpp) in AVX2: the same reduction, polynomial and operations, with 2^n built
// from its exponent bits instead of vscalefps. n is in [-126, 126] after the clamp, so 2^n is a
// normal float and e * 2^n rounds once, as vscalefps does: the same results.
VARCODE_AVX2_FMA inline __m256 exp256(__m256 z) {
  z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(z, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), z);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 e = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e, _mm256_castsi256_ps(pow2));
}

// gelu512 in AVX2 (same operations).
VARCODE_AVX2_FMA inline __m256 gelu256(__m256 x) {
  const __m256 x2 = _mm256_mul_ps(x, x);
  const __m256 u =
      _mm256_mul_ps(x, _mm256_fmadd_ps(x2, _mm256_set1_ps(0.7978845608f * 0.044715f), _mm256_set1_ps(0.7978845608f)));
  const __m256 e = exp256(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f)));
  return _mm256_div_ps(x, _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
}

// The first `valid` (0..8) of 8 int32 lanes, as vpmaskmov's mask.
VARCODE_AVX2_FMA inline __m256i first_lanes8(int valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// C's int32 partial sums or f32 results: whole ymm where all 8 columns are valid, vpmaskmov in
// the N tail (masked-off lanes are neither read nor written, nor can they fault).
VARCODE_AVX2_FMA inline __m256 load_cols(const float* p, int valid) {
  return valid == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first_lanes8(valid));
}
VARCODE_AVX2_FMA inline void store_cols(float* p, int valid, __m256 v) {
  if (valid == 8)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, first_lanes8(valid), v);
}

// One 16-column group (NR = 2 ymm; 1 when at most 8 of its columns are valid): t points at the
// group's columns, b_step is the panel's bytes per k quad (its width x 4), last_valid the valid
// columns (1..8) of the last ymm. 6 x 2 accumulators + 2 weight vectors + 1 broadcast of x are
// 15 of the 16 ymm registers.
template <class Dot, int MR, int NR>
VARCODE_AVX2_FMA void micro(const Tile& t, int64_t b_step, int last_valid) {
  __m256i acc[MR][NR];
  int valid[NR];
#pragma GCC unroll 2
  for (int j = 0; j < NR; ++j) valid[j] = j == NR - 1 ? last_valid : 8;
  if (t.first) {
    // acc = -zero * colsum, as in the zmm kernel.
#pragma GCC unroll 2
    for (int j = 0; j < NR; ++j) {
      const __m256i cs =
          t.raw ? _mm256_setzero_si256() : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.colsum + 8 * j));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] = t.raw ? cs : _mm256_mullo_epi32(_mm256_set1_epi32(-t.row_zero[i]), cs);
    }
  } else {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_castps_si256(load_cols(t.c + i * t.ldc + 8 * j, valid[j]));
  }
  const int8_t* b = t.b;   // [kquads][width][4], at the group's first column
  const uint8_t* a = t.a;  // [MR, lda]
  const char* pf = t.pf;
  for (int64_t kq = 0; kq < t.kquads; ++kq, b += b_step, a += 4) {
    for (int l = 0; l < t.pf_lines && pf < t.pf_end; ++l, pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
    __m256i bv[NR];
#pragma GCC unroll 2
    for (int j = 0; j < NR; ++j) bv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 * j));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t quad;  // x[i, 4kq .. 4kq + 3] as u8: one dword broadcast to every column lane
      std::memcpy(&quad, a + i * t.lda, 4);
      const __m256i av = _mm256_set1_epi32(quad);
#pragma GCC unroll 2
      for (int j = 0; j < NR; ++j) acc[i][j] = Dot::dot(acc[i][j], av, bv[j]);
    }
  }
  if (!t.last || t.raw) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < NR; ++j) store_cols(t.c + i * t.ldc + 8 * j, valid[j], _mm256_castsi256_ps(acc[i][j]));
    return;
  }
#pragma GCC unroll 2
  for (int j = 0; j < NR; ++j) {
    const __m256 ws = _mm256_loadu_ps(t.w_scale + 8 * j);
    const __m256 bias = t.bias ? load_cols(t.bias + 8 * j, valid[j]) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 s = _mm256_mul_ps(_mm256_set1_ps(t.row_scale[i]), ws);
      __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][j]), s, bias);
      if (t.gelu) v = gelu256(v);
      store_cols(t.c + i * t.ldc + 8 * j, valid[j], v);
    }
  }
}

// A row block over a panel's `groups` 16-column groups, one after the other: the block's rows of
// x stay in L1 while the groups' weights stream from L2. The zmm kernel's prefetch share of the
// block is issued during the first group.
template <class Dot, int MR>
VARCODE_AVX2_FMA void micro_groups(const Tile& t, int64_t groups) {
  const int64_t b_step = groups * 64;
  const int tail_cols = __builtin_popcount(t.tail);  // 1..16 valid columns in the last group
  for (int64_t g = 0; g < groups; ++g) {
    Tile s = t;
    s.b = t.b + 64 * g;
    s.c = t.c + 16 * g;
    s.colsum = t.colsum + 16 * g;
    s.w_scale = t.w_scale + 16 * g;
    s.bias = t.bias ? t.bias + 16 * g : nullptr;
    if (g > 0) s.pf_lines = 0;
    const int cols = g == groups - 1 ? tail_cols : 16;
    if (cols > 8)
      micro<Dot, MR, 2>(s, b_step, cols - 8);
    else
      micro<Dot, MR, 1>(s, b_step, cols);
  }
}

using GroupsFn = void (*)(const Tile&, int64_t);

// [rows - 1]: the M tail gets its own unrolled kernels.
template <class Dot>
inline constexpr std::array<GroupsFn, kMr> kMicro = {&micro_groups<Dot, 1>, &micro_groups<Dot, 2>,
                                                     &micro_groups<Dot, 3>, &micro_groups<Dot, 4>,
                                                     &micro_groups<Dot, 5>, &micro_groups<Dot, 6>};

// int8::micro_tile's contract: `rows` (1..kMr) rows and `groups` (1..kNr) 16-column groups.
template <class Dot>
inline void micro_tile(int64_t rows, int64_t groups, const Tile& t) {
  kMicro<Dot>[static_cast<size_t>(rows - 1)](t, groups);
}

}  // namespace varcode::kernels::cpu::int8::ymm
#endif
