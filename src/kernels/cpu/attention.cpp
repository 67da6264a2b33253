#include "kernels/cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace varcode::kernels::cpu {

namespace {
constexpr int64_t D = KvView::kHeadDim;

inline float head_scale(const float* scale_mul_h, int64_t h) {
  return std::exp(std::min(scale_mul_h[h], static_cast<float>(std::log(100.0))));
}

// Writes normalised k and v of the new tokens into the cache and the normalised, scaled q into
// `q_out` [R, H, l, D].
void fill_cache(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, KvView cache, float* q_out) {
  const int64_t R = cache.rows, H = cache.heads, C = H * D;
#pragma omp parallel for collapse(3) if (R * l * H > 8)
  for (int64_t r = 0; r < R; ++r)
    for (int64_t t = 0; t < l; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const float* row = qkv + (r * l + t) * 3 * C;
        const float* q = row + h * D;
        const float* k = row + C + h * D;
        const float* v = row + 2 * C + h * D;
        float qn = 0, kn = 0;
        for (int64_t d = 0; d < D; ++d) {
          qn += q[d] * q[d];
          kn += k[d] * k[d];
        }
        const float qs = head_scale(scale_mul_h, h) / std::max(std::sqrt(qn), 1e-12f);
        const float ks = 1.0f / std::max(std::sqrt(kn), 1e-12f);
        const int64_t slot = ((r * H + h) * cache.capacity + p0 + t) * D;
        float* qo = q_out + ((r * H + h) * l + t) * D;
        for (int64_t d = 0; d < D; ++d) {
          qo[d] = q[d] * qs;
          cache.k[slot + d] = k[d] * ks;
          cache.v[slot + d] = v[d];
        }
      }
}
}  // namespace

void l2norm_attention(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                      KvView cache, float* out) {
  const int64_t R = cache.rows, H = cache.heads, C = H * D;
  std::vector<float> q(static_cast<size_t>(R * H * l * D));
  fill_cache(qkv, l, p0, scale_mul_h, cache, q.data());
  int max_keys = 0;
  for (int64_t t = 0; t < l; ++t) max_keys = std::max(max_keys, key_limit[t]);
#pragma omp parallel
  {
    std::vector<float> scores(static_cast<size_t>(max_keys));
#pragma omp for collapse(3) schedule(static)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < l; ++t) {
          const float* qv = q.data() + ((r * H + h) * l + t) * D;
          const float* kb = cache.k + (r * H + h) * cache.capacity * D;
          const float* vb = cache.v + (r * H + h) * cache.capacity * D;
          const int n = key_limit[t];
          float mx = -INFINITY;
          for (int j = 0; j < n; ++j) {
            const float* kj = kb + j * D;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t d = 0; d < D; ++d) s += qv[d] * kj[d];
            scores[static_cast<size_t>(j)] = s;
            mx = std::max(mx, s);
          }
          float denom = 0;
          for (int j = 0; j < n; ++j) {
            const float e = std::exp(scores[static_cast<size_t>(j)] - mx);
            scores[static_cast<size_t>(j)] = e;
            denom += e;
          }
          float acc[D] = {};
          for (int j = 0; j < n; ++j) {
            const float w = scores[static_cast<size_t>(j)];
            const float* vj = vb + j * D;
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) acc[d] += w * vj[d];
          }
          float* o = out + (r * l + t) * C + h * D;
          const float inv = 1.0f / denom;
          for (int64_t d = 0; d < D; ++d) o[d] = acc[d] * inv;
        }
  }
}

void l2norm_attention_reference(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h,
                                const int* key_limit, KvView cache, float* out) {
  const int64_t R = cache.rows, H = cache.heads, C = H * D;
  std::vector<float> q(static_cast<size_t>(R * H * l * D));
  fill_cache(qkv, l, p0, scale_mul_h, cache, q.data());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < l; ++t) {
        const float* qv = q.data() + ((r * H + h) * l + t) * D;
        std::vector<double> s(static_cast<size_t>(key_limit[t]));
        double mx = -INFINITY;
        for (int j = 0; j < key_limit[t]; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += static_cast<double>(qv[d]) * cache.k[((r * H + h) * cache.capacity + j) * D + d];
          s[static_cast<size_t>(j)] = acc;
          mx = std::max(mx, acc);
        }
        double denom = 0;
        for (auto& x : s) denom += (x = std::exp(x - mx));
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int j = 0; j < key_limit[t]; ++j)
            acc += s[static_cast<size_t>(j)] * cache.v[((r * H + h) * cache.capacity + j) * D + d];
          out[(r * l + t) * C + h * D + d] = static_cast<float>(acc / denom);
        }
      }
}

}  // namespace varcode::kernels::cpu
