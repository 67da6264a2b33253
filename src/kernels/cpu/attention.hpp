// VAR's l2-normalised self-attention over a KV cache (spec §3.4), one pass per query: no [L, L]
// score matrix is ever materialised.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace varcode::kernels::cpu {

// The KV cache of one block, in one of two forms:
//  - f32 (k, v): keys (already l2-normalised) transposed per row and head [R, H, 64, capacity],
//    values [R, H, capacity, 64];
//  - bf16 (k16, v16; set instead of k and v): laid out for vdpbf16ps (attention_bf16.cpp), per row
//    and head keys as panels of 64 positions [capacity / 64][32][64][2] (pairs of dims) and
//    values as [capacity / 2][64][2] (pairs of positions); capacity a multiple of 64 and the
//    memory zeroed before the first write (the kernel reads whole panels and position pairs).
struct KvView {
  float* k = nullptr;
  float* v = nullptr;
  int64_t rows = 0, heads = 0, capacity = 0;
  uint16_t* k16 = nullptr;
  uint16_t* v16 = nullptr;
  static constexpr int64_t kHeadDim = 64;
  static constexpr int64_t kCapacityAlign = 64;  // capacities are rounded up to this
};

// True where the bf16 cache form runs (AVX512-BF16, as for Bf16Gemm).
bool bf16_attention_supported();

// qkv: [R, l, 3C] (q | k | v, each H heads of 64) for the tokens at positions [p0, p0 + l).
// Normalises q (times exp(min(scale_mul[h], ln 100))) and k, appends k and v to the cache at
// [p0, p0 + l), then for token t attends to cache positions [0, key_limit[t]) (key_limit[t] >
// p0 + t encodes the block-causal mask: a scale sees itself in full). out: [R, l, C].
// With a bf16 cache, q, k, v and the softmax weights are rounded to bf16 and the dot products
// accumulate in f32 (what the reference's bf16 autocast does); otherwise all in f32.
void l2norm_attention(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                      KvView cache, float* out);

// The bf16-cache form, which l2norm_attention dispatches to (attention_bf16.cpp).
void l2norm_attention_bf16(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                           KvView cache, float* out);

namespace detail {
// The new tokens' queries in tiles of up to max_tile consecutive tokens that share a key limit (a
// tile never straddles two scales), and the largest key limit.
struct QueryTiles {
  std::vector<std::pair<int64_t, int64_t>> tiles;  // (first query, count)
  int64_t max_keys = 0;
};
QueryTiles query_tiles(const int* key_limit, int64_t l, int64_t max_tile);

// Calls fn(r, t, h, q, k, v, q_scale, k_scale) for every new token's head, in parallel: q, k, v
// point into qkv [R, l, 3C]; the scales l2-normalise q and k, q's times the head scale
// exp(min(scale_mul[h], ln 100)). Both cache forms fill through it.
template <typename Fn>
void for_each_new_head(const float* qkv, int64_t R, int64_t l, int64_t H, const float* scale_mul_h, Fn fn) {
  constexpr int64_t D = KvView::kHeadDim;
  const int64_t C = H * D;
#pragma omp parallel for collapse(3) if (R * l * H > 8)
  for (int64_t r = 0; r < R; ++r)
    for (int64_t t = 0; t < l; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const float* row = qkv + (r * l + t) * 3 * C;
        const float* q = row + h * D;
        const float* k = row + C + h * D;
        float qn = 0, kn = 0;
        for (int64_t d = 0; d < D; ++d) {
          qn += q[d] * q[d];
          kn += k[d] * k[d];
        }
        const float head_scale = std::exp(std::min(scale_mul_h[h], static_cast<float>(std::log(100.0))));
        fn(r, t, h, q, k, row + 2 * C + h * D, head_scale / std::max(std::sqrt(qn), 1e-12f),
           1.0f / std::max(std::sqrt(kn), 1e-12f));
      }
}
}  // namespace detail

}  // namespace varcode::kernels::cpu
