// AVX512-BF16 GEMM: y [M, N] = x [M, K] W^T + b, W packed once into panels that vdpbf16ps reads
// directly. Blocking (GotoBLAS-style, with the weights as the streamed operand):
//   - N in panels of 64 columns (4 zmm of 16 f32 lanes); a panel is [K/2][64][2] bf16, so one
//     k-pair step of a panel is 256 contiguous bytes and each zmm lane holds one column's pair.
//   - K in blocks of kKcPairs pairs: one panel block (512 pairs x 64 cols x 4 B = 128 KiB) stays
//     in L2 while every row block of x runs over it. An L1-sized block (128 pairs) measured ~5%
//     slower: reloading the accumulators per block costs more than reading the weights from L2.
//   - M in blocks of 6 rows: 6 x 4 = 24 zmm accumulators + 4 weight zmm + 1 broadcast of x fit
//     the 32 registers, and 24 independent dot-product chains cover the instruction's latency on
//     two pipes. Each step: 4 weight loads + 6 broadcasts for 24 vdpbf16ps.
//   - Threads take contiguous ranges of panels and prefetch the next panel block into L2 while the
//     current one runs: at the drafter's 18-128 rows the weights come from DRAM.
// Bias is folded into the accumulators' start, GELU-tanh into the final store.
// Its speed against the instruction peak and oneDNN: bench/gemm_bench.cpp and the README.
#include "kernels/cpu/gemm_bf16.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/bf16_micro.hpp"
#include "kernels/cpu/gemm.hpp"
#include "varcode/error.hpp"

namespace varcode::kernels::cpu {

namespace {
using bf16::kMr;
using bf16::kPanel;
constexpr int64_t kKcPairs = 512;  // K pairs per cache block of a panel

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

#if defined(__x86_64__)
// Bytes of panel p's K block starting at pair k0.
int64_t block_bytes(int64_t n, int64_t kp, int64_t p, int64_t k0) {
  const int64_t w = std::min(kPanel, n - p * kPanel), groups = (w + 15) / 16;
  return (std::min(kp / 2, k0 + kKcPairs) - k0) * groups * 64;
}

// Rows [r0, r1) of panel p: the K blocks outside, so one block of the panel serves every row
// block from L1 before the next block is read. While a block runs, the next one (of this panel,
// else `next` of `next_bytes`, the caller's next panel) is prefetched, spread over its k steps.
void run_tile(const uint16_t* a, int64_t kp, const uint16_t* packed, int64_t n, int64_t p, int64_t r0, int64_t r1,
              const float* bias, bool gelu, float* y, const uint16_t* next, int64_t next_bytes) {
  const int64_t n0 = p * kPanel;
  const int64_t w = std::min(kPanel, n - n0);
  const int64_t groups = (w + 15) / 16;
  const __mmask16 tail = static_cast<__mmask16>(w % 16 == 0 ? 0xffff : (1u << (w % 16)) - 1);
  const uint16_t* panel = packed + n0 * kp;  // [K/2][groups * 16][2]
  const int64_t kpairs = kp / 2;
  const int64_t k_blocks = std::max<int64_t>(1, (kpairs + kKcPairs - 1) / kKcPairs);  // K = 0: one, for the bias
  // Row blocks of near-equal height (169 rows: 24 x 6 + 5 x 5, not 28 x 6 + 1): a block of one
  // or two rows has too few accumulator chains to hide the dot product's latency.
  const int64_t blocks = (r1 - r0 + kMr - 1) / kMr, base = (r1 - r0) / blocks, taller = (r1 - r0) % blocks;
  for (int64_t kb = 0; kb < k_blocks; ++kb) {
    const int64_t k0 = kb * kKcPairs, k1 = std::min(kpairs, k0 + kKcPairs);
    const bool more = kb + 1 < k_blocks;
    const char* pf = reinterpret_cast<const char*>(more ? panel + (k0 + kKcPairs) * groups * 32 : next);
    const int64_t pf_bytes = more ? block_bytes(n, kp, p, k0 + kKcPairs) : (next ? next_bytes : 0);
    const int64_t steps = std::max<int64_t>(1, blocks * (k1 - k0));
    const int pf_lines = static_cast<int>((pf_bytes / 64 + steps - 1) / steps);
    for (int64_t bi = 0, i = r0; bi < blocks; ++bi) {
      const int64_t rows = base + (bi < taller ? 1 : 0);
      const bf16::Tile t{.a = a + i * kp + 2 * k0,
                         .lda = kp,
                         .b = panel + k0 * groups * 32,
                         .kpairs = k1 - k0,
                         .c = y + i * n + n0,
                         .ldc = n,
                         .bias = bias ? bias + n0 : nullptr,
                         .tail = tail,
                         .first = k0 == 0,
                         .last = kb == k_blocks - 1,
                         .gelu = gelu,
                         .pf = pf ? pf + bi * (k1 - k0) * pf_lines * 64 : nullptr,
                         .pf_end = pf ? pf + pf_bytes : nullptr,
                         .pf_lines = pf ? pf_lines : 0};
      bf16::micro_tile(rows, groups, t);
      i += rows;
    }
  }
}
#endif
}  // namespace

bool Bf16Gemm::supported() {
#if defined(__x86_64__)
  // libgcc's checks include the OS saving the zmm state (XCR0), not only the CPUID bits.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

Bf16Gemm::Bf16Gemm(const uint16_t* w, int64_t n, int64_t k)
    : n_(n), k_(k), kp_((k + 1) / 2 * 2), packed_(nullptr, std::free) {
  if (!supported()) throw Error("Bf16Gemm: this CPU has no AVX512-BF16");
  packed_elems_ = static_cast<size_t>(round16(n_) * kp_);
  const size_t bytes = (packed_elems_ * sizeof(uint16_t) + 63) / 64 * 64;
  packed_.reset(static_cast<uint16_t*>(std::aligned_alloc(64, std::max<size_t>(bytes, 64))));
  if (!packed_)
    throw Error("Bf16Gemm: out of memory packing a [" + std::to_string(n) + ", " + std::to_string(k) + "] weight");
  uint16_t* dst_all = packed_.get();
  const int64_t n_panels = (n_ + kPanel - 1) / kPanel, kpairs = kp_ / 2;
  // Panel p holds columns [64p, 64p + 64) as [K/2][width][2], width = 64 except in the last
  // panel (N rounded up to 16); padding columns and the odd-K pad are zero, so the kernels never
  // branch on them. Rows of W are read contiguously; the scattered writes stay in one panel.
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < n_panels; ++p) {
    const int64_t n0 = p * kPanel, w_valid = std::min(kPanel, n_ - n0), width = round16(w_valid);
    uint16_t* dst = dst_all + n0 * kp_;  // [K/2][width][2]
    for (int64_t c = 0; c < width; ++c) {
      const uint16_t* src = c < w_valid ? w + (n0 + c) * k_ : nullptr;  // row n0 + c of [N, K]
      for (int64_t kk = 0; kk < kpairs; ++kk)
        for (int64_t e = 0; e < 2; ++e) {
          const int64_t kidx = 2 * kk + e;
          dst[(kk * width + c) * 2 + e] = src && kidx < k_ ? src[kidx] : uint16_t{0};
        }
    }
  }
}

Bf16Gemm::~Bf16Gemm() = default;

void Bf16Gemm::forward(const float* x, int64_t m, const float* bias, float* y, bool gelu) const {
  if (m <= 0) return;
#if defined(__x86_64__)
  // x in bf16 once per call, rows padded to an even K (the pad is zero, like the weights').
  thread_local std::vector<uint16_t> staging;
  if (staging.size() < static_cast<size_t>(m * kp_)) staging.resize(static_cast<size_t>(m * kp_));
  uint16_t* a = staging.data();  // [M, Kp]
  if (kp_ == k_) {
    convert_f32_to_bf16(x, a, m * k_);
  } else {
    for (int64_t i = 0; i < m; ++i) {
      convert_f32_to_bf16(x + i * k_, a + i * kp_, k_);
      a[i * kp_ + k_] = 0;
    }
  }
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
  // Below ~256K multiply-adds a parallel region costs more than it saves.
  const bool par = nt > 1 && items > 1 && m * n_ * k_ >= (int64_t{1} << 18);
  const uint16_t* packed = packed_.get();
  // Each thread takes a contiguous range of items, so that it knows its next panel and can
  // prefetch it (run_tile); dynamic scheduling measured no better on a quiet machine.
#pragma omp parallel if (par)
  {
    const int64_t nth = omp_get_num_threads(), th = omp_get_thread_num();
    const int64_t i0 = items * th / nth, i1 = items * (th + 1) / nth;
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t p = it / chunks, r0 = (it % chunks) * chunk_rows;
      const int64_t np = (it + 1) / chunks;  // the next item's panel, prefetched when it is another one
      const bool pf = it + 1 < i1 && np != p;
      run_tile(a, kp_, packed, n_, p, r0, std::min(m, r0 + chunk_rows), bias, gelu, y,
               pf ? packed + np * kPanel * kp_ : nullptr, pf ? block_bytes(n_, kp_, np, 0) : 0);
    }
  }
#else
  (void)x, (void)bias, (void)y, (void)gelu;
  throw Error("Bf16Gemm: not built for this CPU");
#endif
}

}  // namespace varcode::kernels::cpu
