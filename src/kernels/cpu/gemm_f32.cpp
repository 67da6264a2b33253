// AVX-512F GEMM: y [M, N] = x [M, K] W^T + b, W packed once into panels that the FMAs read
// directly. The blocking of gemm_bf16.cpp, with f32 operands:
//   - N in panels of 64 columns (4 zmm of 16 f32 lanes); a panel is [K][64] f32, so one k step
//     of a panel is 256 contiguous, 64-byte aligned bytes: 4 aligned loads.
//   - K in blocks of kKc: one panel block (1024 x 64 x 4 B = 256 KiB) stays in L2 while every
//     row block of x runs over it. 512 and the whole K measured the same within the noise of
//     this shared machine, 1024 a little ahead on two threads.
//   - M in blocks of 6 rows: 6 x 4 = 24 zmm accumulators + 4 weight zmm + 1 broadcast of x fit
//     the 32 registers. Each step: 4 weight loads + 6 broadcasts for 24 vfmadd231ps.
//     Tried and dropped: 12 x 2 tiles (one pass over the weights for up to 12 rows) ran up to 2x
//     slower, broadcasts being the expensive operand on Zen 4; software prefetch of the panel
//     ahead did not help the hardware prefetcher.
// x is read in place (row-major, no packing): each row of a micro-tile is a sequential stream.
// Bias is folded into the accumulators' start, GELU-tanh into the final store.
// Its speed against the instruction peak and oneDNN: bench/gemm_bench.cpp and the README.
#include "kernels/cpu/gemm_f32.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>

#include "kernels/cpu/f32_micro.hpp"
#include "varcode/error.hpp"

namespace varcode::kernels::cpu {

namespace {
using f32::kMr;
using f32::kPanel;
constexpr int64_t kKc = 1024;  // K per cache block of a panel

int64_t round16(int64_t v) { return (v + 15) / 16 * 16; }

#if defined(__x86_64__)
// Rows [r0, r1) of panel p: the K blocks outside, so one block of the panel serves every row
// block from cache before the next block is read.
void run_tile(const float* x, int64_t k, const float* packed, int64_t n, int64_t p, int64_t r0, int64_t r1,
              const float* bias, bool gelu, float* y) {
  const int64_t n0 = p * kPanel;
  const int64_t w = std::min(kPanel, n - n0);
  const int64_t groups = (w + 15) / 16;
  const __mmask16 tail = static_cast<__mmask16>(w % 16 == 0 ? 0xffff : (1u << (w % 16)) - 1);
  const float* panel = packed + n0 * k;                                // [K][groups * 16]
  const int64_t k_blocks = std::max<int64_t>(1, (k + kKc - 1) / kKc);  // K = 0: one, for the bias
  // Row blocks of near-equal height (169 rows: 24 x 6 + 5 x 5, not 28 x 6 + 1): a block of one
  // or two rows has too few accumulator chains to hide the FMA's latency.
  const int64_t blocks = (r1 - r0 + kMr - 1) / kMr, base = (r1 - r0) / blocks, taller = (r1 - r0) % blocks;
  for (int64_t kb = 0; kb < k_blocks; ++kb) {
    const int64_t k0 = kb * kKc, k1 = std::min(k, k0 + kKc);
    for (int64_t bi = 0, i = r0; bi < blocks; ++bi) {
      const int64_t rows = base + (bi < taller ? 1 : 0);
      const f32::Tile t{.a = x + i * k + k0,
                        .lda = k,
                        .b = panel + k0 * groups * 16,
                        .kc = k1 - k0,
                        .c = y + i * n + n0,
                        .ldc = n,
                        .bias = bias ? bias + n0 : nullptr,
                        .tail = tail,
                        .first = k0 == 0,
                        .last = kb == k_blocks - 1,
                        .gelu = gelu,
                        .ldb = groups * 16};
      f32::micro_tile(rows, groups, t);
      i += rows;
    }
  }
}
#endif
}  // namespace

bool F32Gemm::supported() {
#if defined(__x86_64__)
  // libgcc's check includes the OS saving the zmm state (XCR0), not only the CPUID bit.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

F32Gemm::F32Gemm(const float* w, int64_t n, int64_t k) : n_(n), k_(k), packed_(nullptr, std::free) {
  if (!supported()) throw Error("F32Gemm: this CPU has no AVX-512F");
  packed_elems_ = static_cast<size_t>(round16(n_) * k_);
  const size_t bytes = (packed_elems_ * sizeof(float) + 63) / 64 * 64;
  packed_.reset(static_cast<float*>(std::aligned_alloc(64, std::max<size_t>(bytes, 64))));
  if (!packed_)
    throw Error("F32Gemm: out of memory packing a [" + std::to_string(n) + ", " + std::to_string(k) + "] weight");
  float* dst_all = packed_.get();
  const int64_t n_panels = (n_ + kPanel - 1) / kPanel;
  // Panel p holds columns [64p, 64p + 64) as [K][width], width = 64 except in the last panel (N
  // rounded up to 16); padding columns are zero, so the kernels never branch on them. Panel p
  // starts 64 p K floats in and its rows are multiples of 16 floats: all 64-byte aligned.
  // Rows of W are read contiguously, K in blocks so the scattered writes stay in L2.
  constexpr int64_t kPackK = 256;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < n_panels; ++p) {
    const int64_t n0 = p * kPanel, w_valid = std::min(kPanel, n_ - n0), width = round16(w_valid);
    float* dst = dst_all + n0 * k_;  // [K][width]
    for (int64_t k0 = 0; k0 < k_; k0 += kPackK) {
      const int64_t k1 = std::min(k_, k0 + kPackK);
      for (int64_t c = 0; c < width; ++c) {
        const float* src = w + (n0 + c) * k_;  // row n0 + c of [N, K]
        for (int64_t kk = k0; kk < k1; ++kk) dst[kk * width + c] = c < w_valid ? src[kk] : 0.0f;
      }
    }
  }
}

F32Gemm::~F32Gemm() = default;

void F32Gemm::forward(const float* x, int64_t m, const float* bias, float* y, bool gelu) const {
  if (m <= 0) return;
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
  // Below ~256K multiply-adds a parallel region costs more than it saves.
  const bool par = nt > 1 && items > 1 && m * n_ * k_ >= (int64_t{1} << 18);
  const float* packed = packed_.get();
  // Dynamic: the items are coarse (a panel each), and on a shared machine a static split waits
  // for whichever thread the OS parks.
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t p = it / chunks, r0 = (it % chunks) * chunk_rows;
    run_tile(x, k_, packed, n_, p, r0, std::min(m, r0 + chunk_rows), bias, gelu, y);
  }
#else
  (void)x, (void)bias, (void)y, (void)gelu;
  throw Error("F32Gemm: not built for this CPU");
#endif
}

}  // namespace varcode::kernels::cpu
