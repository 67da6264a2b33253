#include "kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/f32_micro.hpp"
#include "kernels/cpu/fast_math.hpp"
#include "kernels/cpu/gemm_f32.hpp"

namespace varcode::kernels::cpu {

namespace {
constexpr int64_t D = KvView::kHeadDim;
constexpr int64_t kQueryTile = 4;  // queries sharing each key/value load

// Writes normalised k (transposed: [64, capacity] per row and head, so that scores vectorise over
// keys) and v of the new tokens into the cache, and the normalised, scaled q into q_out
// [R, H, l, D].
void fill_cache(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, KvView cache, float* q_out) {
  const int64_t H = cache.heads, cap = cache.capacity;
  detail::for_each_new_head(
      qkv, cache.rows, l, H, scale_mul_h,
      [&](int64_t r, int64_t t, int64_t h, const float* q, const float* k, const float* v, float qs, float ks) {
        float* kt = cache.k + (r * H + h) * D * cap + p0 + t;    // column p0 + t of [D, cap]
        float* vr = cache.v + ((r * H + h) * cap + p0 + t) * D;  // row p0 + t of [cap, D]
        float* qo = q_out + ((r * H + h) * l + t) * D;
        for (int64_t d = 0; d < D; ++d) {
          qo[d] = q[d] * qs;
          kt[d * cap] = k[d] * ks;
          vr[d] = v[d];
        }
      });
}

// 16 floats as one value: GCC lowers it to a zmm register in the AVX-512 clone and to narrower
// registers elsewhere, so the register blocking below holds for every target.
typedef float v16 __attribute__((vector_size(64)));
// The same, for unaligned access through float pointers.
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define LOAD16(p) (*reinterpret_cast<const v16u*>(p))
#define STORE16(p, x) (*reinterpret_cast<v16u*>(p) = (x))

// Attention of `nq` (<= kQueryTile) queries to keys [0, n) of one row and head.
// q: [nq, D]; kt: [D, cap]; v: [cap, D]; scores: scratch [kQueryTile, n]; out rows at stride ldo.
VARCODE_SIMD_CLONES void attend_tile(const float* q, int64_t nq, const float* kt, const float* v, int64_t cap,
                                     int64_t n, float* scores, float* out, int64_t ldo) {
  static_assert(kQueryTile == 4 && D == 64, "the register blocking below is written for 4 queries of 64");
  // Missing queries of a short tile alias the first; their results are not stored.
  const float* qr[kQueryTile];
  for (int64_t i = 0; i < kQueryTile; ++i) qr[i] = q + (i < nq ? i : 0) * D;
  // scores[i][j] = q_i . k_j: 16 keys x 4 queries in registers across the whole head dimension.
  int64_t jb = 0;
  for (; jb + 16 <= n; jb += 16) {
    v16 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t d = 0; d < D; ++d) {
      const v16 k = LOAD16(kt + d * cap + jb);
      a0 += k * qr[0][d];
      a1 += k * qr[1][d];
      a2 += k * qr[2][d];
      a3 += k * qr[3][d];
    }
    const v16 acc[kQueryTile] = {a0, a1, a2, a3};  // NOLINT
    for (int64_t i = 0; i < nq; ++i) STORE16(scores + i * n + jb, acc[i]);
  }
  for (; jb < n; ++jb)
    for (int64_t i = 0; i < nq; ++i) {
      float s = 0;
      for (int64_t d = 0; d < D; ++d) s += qr[i][d] * kt[d * cap + jb];
      scores[i * n + jb] = s;
    }
  float inv[kQueryTile] = {1, 1, 1, 1};
  for (int64_t i = 0; i < nq; ++i) {
    float* s = scores + i * n;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) {
      s[j] = exp_approx(s[j] - mx);
      sum += s[j];
    }
    inv[i] = 1.0f / sum;
  }
  // out_i = sum_j p_ij v_j: 4 queries x 64 dims in 16 registers; each v_j row is loaded once.
  const float* pr[kQueryTile];
  for (int64_t i = 0; i < kQueryTile; ++i) pr[i] = scores + (i < nq ? i : 0) * n;
  v16 o[kQueryTile][4] = {};
  for (int64_t j = 0; j < n; ++j) {
    const float* vj = v + j * D;
    const v16 v0 = LOAD16(vj), v1 = LOAD16(vj + 16), v2 = LOAD16(vj + 32), v3 = LOAD16(vj + 48);
    for (int64_t i = 0; i < kQueryTile; ++i) {
      const float p = pr[i][j];
      o[i][0] += v0 * p;
      o[i][1] += v1 * p;
      o[i][2] += v2 * p;
      o[i][3] += v3 * p;
    }
  }
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t c = 0; c < 4; ++c) STORE16(out + i * ldo + c * 16, o[i][c] * inv[i]);
}

#if defined(__x86_64__)
// attend_tile on the f32 GEMM's micro-kernel (f32_micro.hpp), for up to 6 queries: scores = q K^T
// reads the transposed keys [64, cap] as 64-key panels at stride cap, out = p V reads the values
// [cap, 64] as one panel: the broadcast-bound loops above reached ~80 GFLOP/s end to end. Needs
// cap % 16 == 0 (the last 16-key group of a panel is loaded whole).
void attend_tile_avx512(const float* q, int64_t nq, const float* kt, const float* v, int64_t cap, int64_t n,
                        float* scores, int64_t ld, float* out, int64_t ldo) {
  for (int64_t p0 = 0; p0 < n; p0 += 64) {
    const int64_t w = std::min<int64_t>(64, n - p0);
    const f32::Tile t{.a = q,
                      .lda = D,
                      .b = kt + p0,
                      .kc = D,
                      .c = scores + p0,
                      .ldc = ld,
                      .bias = nullptr,
                      .tail = static_cast<__mmask16>(w % 16 == 0 ? 0xffff : (1u << (w % 16)) - 1),
                      .first = true,
                      .last = true,
                      .gelu = false,
                      .ldb = cap};
    f32::micro_tile(nq, (w + 15) / 16, t);
  }
  softmax_rows(scores, ld, nq, n);
  const f32::Tile t{.a = scores,
                    .lda = ld,
                    .b = v,
                    .kc = n,
                    .c = out,
                    .ldc = ldo,
                    .bias = nullptr,
                    .tail = 0xffff,
                    .first = true,
                    .last = true,
                    .gelu = false,
                    .ldb = D};
  f32::micro_tile(nq, f32::kNr, t);
}
#endif
}  // namespace

namespace detail {
QueryTiles query_tiles(const int* key_limit, int64_t l, int64_t max_tile) {
  QueryTiles q;
  for (int64_t t = 0; t < l;) {
    int64_t n = 1;
    while (n < max_tile && t + n < l && key_limit[t + n] == key_limit[t]) ++n;
    q.tiles.emplace_back(t, n);
    t += n;
  }
  for (int64_t t = 0; t < l; ++t) q.max_keys = std::max<int64_t>(q.max_keys, key_limit[t]);
  return q;
}
}  // namespace detail

void l2norm_attention(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                      KvView cache, float* out) {
  if (cache.k16) return l2norm_attention_bf16(qkv, l, p0, scale_mul_h, key_limit, cache, out);
  const int64_t R = cache.rows, H = cache.heads, C = H * D, cap = cache.capacity;
  thread_local std::vector<float> q;  // [R, H, l, D]
  if (q.size() < static_cast<size_t>(R * H * l * D)) q.resize(static_cast<size_t>(R * H * l * D));
  float* const qp = q.data();  // thread_local: resolve it here, not in the worker threads
  fill_cache(qkv, l, p0, scale_mul_h, cache, qp);
#if defined(__x86_64__)
  const bool micro = cap % 16 == 0 && F32Gemm::supported();
#else
  const bool micro = false;
#endif
  const int64_t tile_max = micro ? f32::kMr : kQueryTile;
  const auto [tiles, max_keys] = detail::query_tiles(key_limit, l, tile_max);
  const int64_t ntiles = static_cast<int64_t>(tiles.size());
#pragma omp parallel
  {
    const int64_t ld = (max_keys + 15) / 16 * 16;
    std::vector<float> scores(static_cast<size_t>(tile_max * ld));
#pragma omp for collapse(3) schedule(dynamic, 4)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t ti = 0; ti < ntiles; ++ti) {
          const auto [t0, nq] = tiles[static_cast<size_t>(ti)];
          const float* q_tile = qp + ((r * H + h) * l + t0) * D;  // [nq, 64]
          const float* kt = cache.k + (r * H + h) * D * cap;      // [64, cap]
          const float* v = cache.v + (r * H + h) * cap * D;       // [cap, 64]
          float* o = out + (r * l + t0) * C + h * D;              // [nq, C] at head h
#if defined(__x86_64__)
          if (micro) {
            attend_tile_avx512(q_tile, nq, kt, v, cap, key_limit[t0], scores.data(), ld, o, C);
            continue;
          }
#endif
          attend_tile(q_tile, nq, kt, v, cap, key_limit[t0], scores.data(), o, C);
        }
  }
}


}  // namespace varcode::kernels::cpu
