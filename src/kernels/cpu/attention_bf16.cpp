// l2-normalised attention over a bf16 KV cache, on the bf16 GEMM's micro-kernel (bf16_micro.hpp).
// Per row, head and tile of up to 6 queries of one scale:
//   scores [nq, n] = q [nq, 64] K^T  : one micro-tile per 64-key panel, K = 32 dim pairs
//   p = softmax(scores) in f32, rounded to bf16 (already divided by the sum)
//   out [nq, 64] = p [nq, n] V        : one micro-tile, K = n / 2 position pairs
// so both products run at the GEMM's rate instead of the f32 kernel's broadcast-bound loops. The
// cache layouts (attention.hpp)
// are exactly the panels the micro-kernel reads: keys [32 dim pairs][64 keys][2], values
// [n / 2 position pairs][64 dims][2].
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/bf16_micro.hpp"
#include "kernels/cpu/fast_math.hpp"
#include "kernels/cpu/gemm_bf16.hpp"
#include "varcode/error.hpp"

namespace varcode::kernels::cpu {

namespace {
constexpr int64_t D = KvView::kHeadDim;
constexpr int64_t kPanelElems = 64 * D;  // one 64-key panel of K: [32][64][2]
constexpr int64_t kQueryTile = bf16::kMr;

// Element (j, d) of one row and head's keys / values in the bf16 layouts.
inline int64_t k_index(int64_t j, int64_t d) { return ((j / 64) * (D / 2) + d / 2) * 128 + (j % 64) * 2 + d % 2; }
inline int64_t v_index(int64_t j, int64_t d) { return ((j / 2) * D + d) * 2 + j % 2; }

// Normalised k and v of the new tokens into the cache; normalised, scaled q into q_out
// [R, H, l, 64] bf16.
void fill_cache_bf16(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, KvView cache, uint16_t* q_out) {
  const int64_t H = cache.heads, cap = cache.capacity;
  detail::for_each_new_head(
      qkv, cache.rows, l, H, scale_mul_h,
      [&](int64_t r, int64_t t, int64_t h, const float* q, const float* k, const float* v, float qs, float ks) {
        uint16_t* kc = cache.k16 + (r * H + h) * cap * D;  // this row and head's panels
        uint16_t* vc = cache.v16 + (r * H + h) * cap * D;
        uint16_t* qo = q_out + ((r * H + h) * l + t) * D;
        const int64_t j = p0 + t;
        for (int64_t d = 0; d < D; ++d) {
          qo[d] = bf16_round_finite(q[d] * qs);
          kc[k_index(j, d)] = bf16_round_finite(k[d] * ks);
          vc[v_index(j, d)] = bf16_round_finite(v[d]);
        }
      });
}

#if defined(__x86_64__)
// Softmax weights [nq, ld] (n valid) -> bf16 [nq, n_even], the odd pad zero.
VARCODE_AVX512BF16 void to_bf16_rows(const float* p, int64_t ld, int64_t nq, int64_t n, uint16_t* out, int64_t n_even) {
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < n_even; j += 16) {
      const __m256bh pb = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(first_lanes(n - j), p + i * ld + j));
      _mm256_mask_storeu_epi16(out + i * n_even + j, first_lanes(n_even - j), (__m256i)pb);
    }
}

// nq (<= 6) queries of one row and head against keys [0, n).
void attend_tile_bf16(const uint16_t* q, int64_t nq, const uint16_t* kc, const uint16_t* vc, int64_t n, float* scores,
                      uint16_t* probs, float* out, int64_t ldo) {
  const int64_t panels = (n + 63) / 64, ld = panels * 64, n_even = (n + 1) / 2 * 2;
  for (int64_t p = 0; p < panels; ++p) {  // scores [nq, ld]: whole panels, the columns past n unused
    const bf16::Tile t{.a = q,
                       .lda = D,
                       .b = kc + p * kPanelElems,
                       .kpairs = D / 2,
                       .c = scores + p * 64,
                       .ldc = ld,
                       .bias = nullptr,
                       .tail = 0xffff,
                       .first = true,
                       .last = true,
                       .gelu = false};
    bf16::micro_tile(nq, bf16::kNr, t);
  }
  softmax_rows(scores, ld, nq, n);
  to_bf16_rows(scores, ld, nq, n, probs, n_even);
  const bf16::Tile t{.a = probs,
                     .lda = n_even,
                     .b = vc,
                     .kpairs = n_even / 2,
                     .c = out,
                     .ldc = ldo,
                     .bias = nullptr,
                     .tail = 0xffff,
                     .first = true,
                     .last = true,
                     .gelu = false};
  bf16::micro_tile(nq, bf16::kNr, t);
}
#endif
}  // namespace

bool bf16_attention_supported() { return Bf16Gemm::supported(); }

void l2norm_attention_bf16(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                           KvView cache, float* out) {
#if defined(__x86_64__)
  if (!bf16_attention_supported()) throw Error("l2norm_attention: a bf16 KV cache needs AVX512-BF16");
  const int64_t R = cache.rows, H = cache.heads, C = H * D, cap = cache.capacity;
  if (cap % KvView::kCapacityAlign != 0) throw Error("internal: bf16 KV cache capacity not a multiple of 64");
  thread_local std::vector<uint16_t> q;  // [R, H, l, 64]
  if (q.size() < static_cast<size_t>(R * H * l * D)) q.resize(static_cast<size_t>(R * H * l * D));
  uint16_t* const qp = q.data();  // thread_local: resolve it here, not in the worker threads
  fill_cache_bf16(qkv, l, p0, scale_mul_h, cache, qp);
  const auto [tiles, max_keys] = detail::query_tiles(key_limit, l, kQueryTile);
  const int64_t ld = (max_keys + 63) / 64 * 64, ntiles = static_cast<int64_t>(tiles.size());
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(kQueryTile * ld));
    std::vector<uint16_t> probs(static_cast<size_t>(kQueryTile * ld));
#pragma omp for collapse(3) schedule(dynamic, 4)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t ti = 0; ti < ntiles; ++ti) {
          const auto [t0, nq] = tiles[static_cast<size_t>(ti)];
          const int64_t base = (r * H + h) * cap * D;
          attend_tile_bf16(qp + ((r * H + h) * l + t0) * D, nq, cache.k16 + base, cache.v16 + base, key_limit[t0],
                           scores.data(), probs.data(), out + (r * l + t0) * C + h * D, C);
        }
  }
#else
  (void)qkv, (void)l, (void)p0, (void)scale_mul_h, (void)key_limit, (void)cache, (void)out;
  throw Error("l2norm_attention: a bf16 KV cache needs AVX512-BF16");
#endif
}

}  // namespace varcode::kernels::cpu
