// VNNI GEMM: y [M, N] = dequant(a [M, K] u8 x W_q^T s8) + b, W packed once into panels that
// vpdpbusd reads directly. The blocking of gemm_bf16.cpp, with 4 k per lane instead of 2:
//   - N in panels of 64 columns (4 zmm of 16 int32 lanes); a panel is [K/4][64][4] s8, so one
//     k-quad step of a panel is 256 contiguous bytes and each zmm lane holds one column's quad.
//   - K in blocks of kKcQuads quads: one panel block (512 quads x 64 cols x 4 B = 128 KiB) stays
//     in L2 while every row block of x runs over it; the int32 partial sums wait in y's memory.
//   - M in blocks of 6 rows: 6 x 4 = 24 zmm accumulators + 4 weight zmm + 1 broadcast of x fit
//     the 32 registers. Each step: 4 weight loads + 6 broadcasts for 24 vpdpbusd (64 multiply-
//     adds each, twice vdpbf16ps's 32).
//   - Threads take contiguous ranges of panels and prefetch the next panel block into L2 while the
//     current one runs.
// x is quantised per row once per call (gemm_int8.hpp has the formulas), into a [M, K/4 * 4]
// staging buffer; the zero point's correction starts the accumulators, the dequantisation, bias
// and GELU-tanh are the final store.
// CPUs with AVX-VNNI and no AVX512-VNNI run the same blocking and packed panels on the 256-bit
// kernel of int8_micro_ymm.hpp (6 x 16 tiles: 16 ymm registers), one 16-column group of a panel
// after the other.
#include "kernels/cpu/gemm_int8.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/int8_micro.hpp"
#include "kernels/cpu/int8_micro_ymm.hpp"
#include "varcode/error.hpp"

namespace varcode::kernels::cpu {

namespace {
using int8::kMr;
using int8::kPanel;
constexpr int64_t kKcQuads = 512;  // K quads per cache block of a panel

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

// The scale's fallback: 1 where the range is empty or so small that its inverse overflows.
float safe_scale(float s) { return s > 0 && std::isfinite(1.0f / s) ? s : 1.0f; }

void quantize_row_scalar(const float* x, int64_t k, uint8_t* a, float* scale, int32_t* zero) {
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < k; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  const float s = safe_scale((hi - lo) / 255.0f), inv = 1.0f / s;
  const int32_t z = static_cast<int32_t>(std::nearbyint(-lo * inv));
  for (int64_t i = 0; i < k; ++i)
    a[i] = static_cast<uint8_t>(std::clamp(static_cast<int32_t>(std::nearbyint(x[i] * inv)) + z, 0, 255));
  *scale = s;
  *zero = z;
}

#if defined(__x86_64__)
// quantize_row_scalar with AVX-512: the same min/max, products and round-to-nearest-even
// (vcvtps2dq under the default MXCSR), so the same codes.
VARCODE_AVX512VNNI void quantize_row_avx512(const float* x, int64_t k, uint8_t* a, float* scale, int32_t* zero) {
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 valid = first_lanes(k - i);
    const __m512 v = _mm512_maskz_loadu_ps(valid, x + i);  // masked lanes read 0: within [lo, hi] already
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
  }
  // Reduced through memory: GCC 12's _mm512_reduce_min_ps trips -Wuninitialized (its
  // _mm256_undefined_pd), and min/max are exact in any order.
  alignas(64) float lo16[16], hi16[16];
  _mm512_store_ps(lo16, lo);
  _mm512_store_ps(hi16, hi);
  float l = 0, h = 0;
  for (int j = 0; j < 16; ++j) l = std::min(l, lo16[j]), h = std::max(h, hi16[j]);
  const float s = safe_scale((h - l) / 255.0f), inv = 1.0f / s;
  const int32_t z = static_cast<int32_t>(std::nearbyint(-l * inv));
  const __m512 iv = _mm512_set1_ps(inv);
  const __m512i zv = _mm512_set1_epi32(z), top = _mm512_set1_epi32(255), bottom = _mm512_setzero_si512();
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 valid = first_lanes(k - i);
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(valid, x + i), iv)), zv);
    q = _mm512_min_epi32(_mm512_max_epi32(q, bottom), top);
    _mm_mask_storeu_epi8(a + i, valid, _mm512_cvtepi32_epi8(q));
  }
  *scale = s;
  *zero = z;
}

// quantize_row_scalar with AVX2 (the ymm kernels' CPUs may have no AVX-512): the same
// operations as quantize_row_avx512, so the same codes.
VARCODE_AVX2_FMA void quantize_row_avx2(const float* x, int64_t k, uint8_t* a, float* scale, int32_t* zero) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    lo = _mm256_min_ps(lo, v);
    hi = _mm256_max_ps(hi, v);
  }
  alignas(32) float lo8[8], hi8[8];
  _mm256_store_ps(lo8, lo);
  _mm256_store_ps(hi8, hi);
  float l = 0, h = 0;
  for (int j = 0; j < 8; ++j) l = std::min(l, lo8[j]), h = std::max(h, hi8[j]);
  for (int64_t t = i; t < k; ++t) l = std::min(l, x[t]), h = std::max(h, x[t]);
  const float s = safe_scale((h - l) / 255.0f), inv = 1.0f / s;
  const int32_t z = static_cast<int32_t>(std::nearbyint(-l * inv));
  const __m256 iv = _mm256_set1_ps(inv);
  const __m256i zv = _mm256_set1_epi32(z), top = _mm256_set1_epi32(255), bottom = _mm256_setzero_si256();
  for (i = 0; i + 8 <= k; i += 8) {
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), iv)), zv);
    q = _mm256_min_epi32(_mm256_max_epi32(q, bottom), top);
    // 8 int32 in [0, 255] -> 8 bytes (the saturating packs change nothing in that range).
    const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(a + i), _mm_packus_epi16(w16, w16));
  }
  for (; i < k; ++i)
    a[i] = static_cast<uint8_t>(std::clamp(static_cast<int32_t>(std::nearbyint(x[i] * inv)) + z, 0, 255));
  *scale = s;
  *zero = z;
}

// Bytes of panel p's K block starting at quad k0.
int64_t block_bytes(int64_t n, int64_t kq, int64_t p, int64_t k0) {
  const int64_t w = std::min(kPanel, n - p * kPanel), groups = (w + 15) / 16;
  return (std::min(kq / 4, k0 + kKcQuads) - k0) * groups * 64;
}

struct RunArgs {
  const uint8_t* a;  // [M, lda] u8
  int64_t lda;
  const float* row_scale;   // [M] or null (raw)
  const int32_t* row_zero;  // [M] or null (raw)
  const int8_t* packed;     // the panels
  const int32_t* colsum;    // [n_pad]
  const float* w_scale;     // [n_pad]
  const float* bias;        // [N] or null
  int64_t n, kq;
  bool gelu, raw;
  float* c;  // [M, N]
};

// Rows [r0, r1) of panel p: the K blocks outside, so one block of the panel serves every row
// block from L1/L2 before the next block is read. While a block runs, the next one (of this
// panel, else `next` of `next_bytes`, the caller's next panel) is prefetched over its k steps.
// MicroTile: int8::micro_tile (zmm) or an int8::ymm::micro_tile, called as micro_tile(rows,
// groups, tile); a template argument, so that the zmm path compiles to a direct call as before.
template <auto MicroTile>
void run_tile(const RunArgs& r, int64_t p, int64_t r0, int64_t r1, const int8_t* next, int64_t next_bytes) {
  const int64_t n0 = p * kPanel;
  const int64_t w = std::min(kPanel, r.n - n0);
  const int64_t groups = (w + 15) / 16;
  const __mmask16 tail = static_cast<__mmask16>(w % 16 == 0 ? 0xffff : (1u << (w % 16)) - 1);
  const int8_t* panel = r.packed + n0 * r.kq;  // [K/4][groups * 16][4]
  const int64_t kquads = r.kq / 4;
  const int64_t k_blocks = std::max<int64_t>(1, (kquads + kKcQuads - 1) / kKcQuads);  // K = 0: one, for the bias
  // Row blocks of near-equal height (169 rows: 24 x 6 + 5 x 5, not 28 x 6 + 1): a block of one
  // or two rows has too few accumulator chains to hide the dot product's latency.
  const int64_t blocks = (r1 - r0 + kMr - 1) / kMr, base = (r1 - r0) / blocks, taller = (r1 - r0) % blocks;
  for (int64_t kb = 0; kb < k_blocks; ++kb) {
    const int64_t k0 = kb * kKcQuads, k1 = std::min(kquads, k0 + kKcQuads);
    const bool more = kb + 1 < k_blocks;
    const char* pf = reinterpret_cast<const char*>(more ? panel + (k0 + kKcQuads) * groups * 64 : next);
    const int64_t pf_bytes = more ? block_bytes(r.n, r.kq, p, k0 + kKcQuads) : (next ? next_bytes : 0);
    const int64_t steps = std::max<int64_t>(1, blocks * (k1 - k0));
    const int pf_lines = static_cast<int>((pf_bytes / 64 + steps - 1) / steps);
    for (int64_t bi = 0, i = r0; bi < blocks; ++bi) {
      const int64_t rows = base + (bi < taller ? 1 : 0);
      const int8::Tile t{.a = r.a + i * r.lda + 4 * k0,
                         .lda = r.lda,
                         .b = panel + k0 * groups * 64,
                         .kquads = k1 - k0,
                         .c = r.c + i * r.n + n0,
                         .ldc = r.n,
                         .row_scale = r.raw ? nullptr : r.row_scale + i,
                         .row_zero = r.raw ? nullptr : r.row_zero + i,
                         .colsum = r.colsum + n0,
                         .w_scale = r.w_scale + n0,
                         .bias = r.bias ? r.bias + n0 : nullptr,
                         .tail = tail,
                         .first = k0 == 0,
                         .last = kb == k_blocks - 1,
                         .gelu = r.gelu,
                         .raw = r.raw,
                         .pf = pf ? pf + bi * (k1 - k0) * pf_lines * 64 : nullptr,
                         .pf_end = pf ? pf + pf_bytes : nullptr,
                         .pf_lines = pf ? pf_lines : 0};
      MicroTile(rows, groups, t);
      i += rows;
    }
  }
}

// Items [0, items) (panel, row chunk), each thread a contiguous range of them, so that it knows
// its next panel and can prefetch it (run_tile).
template <auto MicroTile>
void run_items(const RunArgs& r, int64_t m, int64_t items, int64_t chunks, int64_t chunk_rows, bool par) {
#pragma omp parallel if (par)
  {
    const int64_t nth = omp_get_num_threads(), th = omp_get_thread_num();
    const int64_t i0 = items * th / nth, i1 = items * (th + 1) / nth;
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t p = it / chunks, r0 = (it % chunks) * chunk_rows;
      const int64_t np = (it + 1) / chunks;  // the next item's panel, prefetched when it is another one
      const bool pf = it + 1 < i1 && np != p;
      run_tile<MicroTile>(r, p, r0, std::min(m, r0 + chunk_rows), pf ? r.packed + np * kPanel * r.kq : nullptr,
                          pf ? block_bytes(r.n, r.kq, np, 0) : 0);
    }
  }
}
#endif
}  // namespace

Int8Isa int8_isa() {
#if defined(__x86_64__)
  static const Int8Isa isa = [] {
    const char* env = std::getenv("VARCODE_INT8_ISA");
    const std::string v = env ? env : "";
    if (v.empty() || v == "auto") {
      if (int8_isa_runs_here(Int8Isa::avx512vnni)) return Int8Isa::avx512vnni;
      if (int8_isa_runs_here(Int8Isa::avxvnni)) return Int8Isa::avxvnni;
      return Int8Isa::none;
    }
    for (const Int8Isa named : {Int8Isa::none, Int8Isa::avx512vnni, Int8Isa::avxvnni, Int8Isa::avx512vnni_ymm})
      if (v == int8_isa_name(named)) {
        if (!int8_isa_runs_here(named))
          throw Error("VARCODE_INT8_ISA=" + v + ": this CPU cannot run that kernel (" +
                      (named == Int8Isa::avxvnni ? "it needs AVX-VNNI with AVX2 and FMA"
                                                 : "it needs AVX512-VNNI with AVX512BW/VL/DQ") +
                      ")");
        return named;
      }
    throw Error("VARCODE_INT8_ISA must be auto, none, avx512vnni, avxvnni or avx512vnni-ymm, got '" + v + "'");
  }();
  return isa;
#else
  return Int8Isa::none;
#endif
}

bool int8_isa_runs_here(Int8Isa isa) {
  if (isa == Int8Isa::none) return true;
#if defined(__x86_64__)
  // libgcc's checks include the OS saving the ymm / zmm state (XCR0), not only the CPUID bits.
  __builtin_cpu_init();
  const bool avx512vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (isa) {
    case Int8Isa::avx512vnni:
      return avx512vnni;
    case Int8Isa::avxvnni:
      return __builtin_cpu_supports("avxvnni") && avx2;
    case Int8Isa::avx512vnni_ymm:
      return avx512vnni && avx2;
    case Int8Isa::none:
      break;
  }
#endif
  return false;
}

const char* int8_isa_name(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::avx512vnni:
      return "avx512vnni";
    case Int8Isa::avxvnni:
      return "avxvnni";
    case Int8Isa::avx512vnni_ymm:
      return "avx512vnni-ymm";
    case Int8Isa::none:
      break;
  }
  return "none";
}

std::string int8_unsupported_reason(Int8Isa isa) {
  if (isa != Int8Isa::none) return "";
  return std::string(
             "--dtype int8 needs a CPU with AVX512-VNNI (with AVX512BW/VL/DQ: Zen 4 and later, Intel server "
             "CPUs from Cascade Lake) or AVX-VNNI (with AVX2: Intel client CPUs from Alder Lake); this one "
             "has neither") +
         (std::getenv("VARCODE_INT8_ISA") ? " (or VARCODE_INT8_ISA=none is set)" : "") + ": use --dtype bf16 or f32";
}

void quantize_weights_int8(const float* w, int64_t n, int64_t k, int8_t* q, float* scale) {
#pragma omp parallel for schedule(static) if (n * k > (1 << 16))
  for (int64_t r = 0; r < n; ++r) {
    const float* row = w + r * k;
    float amax = 0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
    const float s = safe_scale(amax / 127.0f);
    for (int64_t i = 0; i < k; ++i)
      q[r * k + i] = static_cast<int8_t>(std::clamp(static_cast<int32_t>(std::nearbyint(row[i] / s)), -127, 127));
    scale[r] = s;
  }
}

namespace {
// quantize_rows_u8 for an `isa` known to run here (Int8Gemm checked it once, at construction).
void quantize_rows_on(Int8Isa isa, const float* x, int64_t m, int64_t k, uint8_t* a, int64_t lda, float* scale,
                      int32_t* zero) {
#pragma omp parallel for schedule(static) if (m * k > (1 << 16))
  for (int64_t r = 0; r < m; ++r) {
#if defined(__x86_64__)
    if (isa == Int8Isa::avx512vnni) {
      quantize_row_avx512(x + r * k, k, a + r * lda, scale + r, zero + r);
      continue;
    }
    if (isa == Int8Isa::avxvnni || isa == Int8Isa::avx512vnni_ymm) {
      quantize_row_avx2(x + r * k, k, a + r * lda, scale + r, zero + r);
      continue;
    }
#endif
    quantize_row_scalar(x + r * k, k, a + r * lda, scale + r, zero + r);
  }
  (void)isa;  // only the scalar form off x86-64
}
}  // namespace

void quantize_rows_u8(const float* x, int64_t m, int64_t k, uint8_t* a, int64_t lda, float* scale, int32_t* zero,
                      Int8Isa isa) {
  if (!int8_isa_runs_here(isa))
    throw Error(std::string("quantize_rows_u8: this CPU cannot run the ") + int8_isa_name(isa) + " kernel");
  quantize_rows_on(isa, x, m, k, a, lda, scale, zero);
}

bool Int8Gemm::supported() { return int8_isa() != Int8Isa::none; }

Int8Gemm::Int8Gemm(const int8_t* q, const float* scale, int64_t n, int64_t k, Int8Isa isa)
    : isa_(isa), n_(n), k_(k), kq_((k + 3) / 4 * 4), n_pad_(round16(n)), packed_(nullptr, std::free) {
  if (isa_ == Int8Isa::none) throw Error("Int8Gemm: " + int8_unsupported_reason(isa_));
  if (!int8_isa_runs_here(isa_))
    throw Error(std::string("Int8Gemm: this CPU cannot run the ") + int8_isa_name(isa_) + " kernel");
  packed_bytes_ = static_cast<size_t>(n_pad_ * kq_);
  packed_.reset(static_cast<int8_t*>(std::aligned_alloc(64, std::max<size_t>((packed_bytes_ + 63) / 64 * 64, 64))));
  if (!packed_)
    throw Error("Int8Gemm: out of memory packing a [" + std::to_string(n) + ", " + std::to_string(k) + "] weight");
  colsum_ = std::make_unique<int32_t[]>(static_cast<size_t>(n_pad_));  // zeroed: the padding stays 0
  scale_ = std::make_unique<float[]>(static_cast<size_t>(n_pad_));
  for (int64_t c = 0; c < n_; ++c) scale_[static_cast<size_t>(c)] = scale[c];
  int8_t* dst_all = packed_.get();
  const int64_t n_panels = (n_ + kPanel - 1) / kPanel, kquads = kq_ / 4;
  // Panel p holds columns [64p, 64p + 64) as [K/4][width][4], width = 64 except in the last
  // panel (N rounded up to 16); padding columns and the K pad are zero, so the kernels never
  // branch on them.
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < n_panels; ++p) {
    const int64_t n0 = p * kPanel, w_valid = std::min(kPanel, n_ - n0), width = round16(w_valid);
    int8_t* dst = dst_all + n0 * kq_;  // [K/4][width][4]
    for (int64_t c = 0; c < width; ++c) {
      const int8_t* src = c < w_valid ? q + (n0 + c) * k_ : nullptr;  // row n0 + c of [N, K]
      int32_t sum = 0;
      for (int64_t kk = 0; kk < kquads; ++kk)
        for (int64_t e = 0; e < 4; ++e) {
          const int64_t kidx = 4 * kk + e;
          const int8_t v = src && kidx < k_ ? src[kidx] : int8_t{0};
          dst[(kk * width + c) * 4 + e] = v;
          sum += v;
        }
      colsum_[static_cast<size_t>(n0 + c)] = sum;
    }
  }
}

Int8Gemm::~Int8Gemm() = default;

void Int8Gemm::run(const uint8_t* a, int64_t lda, int64_t m, const float* row_scale, const int32_t* row_zero,
                   const float* bias, bool gelu, bool raw, float* c) const {
#if defined(__x86_64__)
  // Work items: (panel, row chunk). Panels alone when there are enough to share out (the
  // weights are then read once in all); rows split too when N is narrow.
  const int64_t n_panels = (n_ + kPanel - 1) / kPanel;
  const int64_t m_blocks = (m + kMr - 1) / kMr;
  const int nt = omp_get_max_threads();
  int64_t chunks = 1;
  if (nt > 1 && n_panels < 4 * nt) chunks = std::min<int64_t>(m_blocks, (4 * nt + n_panels - 1) / n_panels);
  const int64_t chunk_rows = (m_blocks + chunks - 1) / chunks * kMr;
  chunks = (m + chunk_rows - 1) / chunk_rows;
  const int64_t items = n_panels * chunks;
  // Below ~512K multiply-adds a parallel region costs more than it saves.
  const bool par = nt > 1 && items > 1 && m * n_ * k_ >= (int64_t{1} << 19);
  const RunArgs args{.a = a,
                     .lda = lda,
                     .row_scale = row_scale,
                     .row_zero = row_zero,
                     .packed = packed_.get(),
                     .colsum = colsum_.get(),
                     .w_scale = scale_.get(),
                     .bias = bias,
                     .n = n_,
                     .kq = kq_,
                     .gelu = gelu,
                     .raw = raw,
                     .c = c};
  switch (isa_) {
    case Int8Isa::avx512vnni:
      run_items<&int8::micro_tile>(args, m, items, chunks, chunk_rows, par);
      break;
    case Int8Isa::avxvnni:
      run_items<&int8::ymm::micro_tile<int8::ymm::VexDot>>(args, m, items, chunks, chunk_rows, par);
      break;
    case Int8Isa::avx512vnni_ymm:
      run_items<&int8::ymm::micro_tile<int8::ymm::EvexDot>>(args, m, items, chunks, chunk_rows, par);
      break;
    case Int8Isa::none:
      throw Error("Int8Gemm: no kernel");  // the constructor refuses none
  }
#else
  (void)a, (void)lda, (void)m, (void)row_scale, (void)row_zero, (void)bias, (void)gelu, (void)raw, (void)c;
  throw Error("Int8Gemm: not built for this CPU");
#endif
}

void Int8Gemm::forward(const float* x, int64_t m, const float* bias, float* y, bool gelu) const {
  if (m <= 0) return;
  // x in u8 once per call, rows padded to K / 4 * 4 (the pad meets zero weights).
  thread_local std::vector<uint8_t> staging;
  thread_local std::vector<float> row_scale;
  thread_local std::vector<int32_t> row_zero;
  if (staging.size() < static_cast<size_t>(m * kq_)) staging.resize(static_cast<size_t>(m * kq_));
  if (row_scale.size() < static_cast<size_t>(m))
    row_scale.resize(static_cast<size_t>(m)), row_zero.resize(row_scale.size());
  uint8_t* a = staging.data();  // [M, Kq]
  quantize_rows_on(isa_, x, m, k_, a, kq_, row_scale.data(), row_zero.data());
  if (kq_ != k_)
    for (int64_t i = 0; i < m; ++i) std::memset(a + i * kq_ + k_, 0, static_cast<size_t>(kq_ - k_));
  run(a, kq_, m, row_scale.data(), row_zero.data(), bias, gelu, false, y);
}

void Int8Gemm::forward_raw(const uint8_t* a, int64_t lda, int64_t m, int32_t* acc) const {
  if (m <= 0) return;
  if (lda < kq_) {
    // The kernels read whole quads: copy into rows padded with zeros.
    std::vector<uint8_t> padded(static_cast<size_t>(m * kq_), 0);  // [M, Kq]
    for (int64_t i = 0; i < m; ++i) std::memcpy(padded.data() + i * kq_, a + i * lda, static_cast<size_t>(k_));
    run(padded.data(), kq_, m, nullptr, nullptr, nullptr, false, true, reinterpret_cast<float*>(acc));
    return;
  }
  run(a, lda, m, nullptr, nullptr, nullptr, false, true, reinterpret_cast<float*>(acc));
}

}  // namespace varcode::kernels::cpu
