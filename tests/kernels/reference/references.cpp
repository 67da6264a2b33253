#include "kernels/reference/references.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace varcode::kernels::cpu {

namespace {
constexpr int64_t D = KvView::kHeadDim;
constexpr double kLnEps = 1e-6;
}  // namespace

void linear_reference(const float* x, int64_t m, const float* w, const float* b, int64_t n, int64_t k, float* y,
                      Epilogue epilogue) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = b ? b[j] : 0.0;
      for (int64_t t = 0; t < k; ++t) acc += static_cast<double>(x[i * k + t]) * w[j * k + t];
      float v = static_cast<float>(acc);
      y[i * n + j] = epilogue == Epilogue::gelu_tanh ? gelu_tanh(v) : v;
    }
}

void adaln_modulate_reference(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale,
                              const float* shift, int64_t mod_stride, float* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < l; ++t) {
      const float* xr = x + (r * l + t) * c;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < c; ++i) mean += xr[i];
      mean /= static_cast<double>(c);
      for (int64_t i = 0; i < c; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= static_cast<double>(c);
      for (int64_t i = 0; i < c; ++i) {
        const double n = (xr[i] - mean) / std::sqrt(var + kLnEps);
        out[(r * l + t) * c + i] =
            static_cast<float>(n * (1.0 + scale[r * mod_stride + i]) + shift[r * mod_stride + i]);
      }
    }
}

void l2norm_attention_reference(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                                KvView cache, float* out) {
  const int64_t R = cache.rows, H = cache.heads, C = H * D, cap = cache.capacity;
  std::vector<float> q(static_cast<size_t>(R * H * l * D));  // [R, H, l, D] normalised, scaled
  detail::for_each_new_head(
      qkv, R, l, H, scale_mul_h,
      [&](int64_t r, int64_t t, int64_t h, const float* qi, const float* ki, const float* vi, float qs, float ks) {
        for (int64_t d = 0; d < D; ++d) {
          q[static_cast<size_t>(((r * H + h) * l + t) * D + d)] = qi[d] * qs;
          cache.k[((r * H + h) * D + d) * cap + p0 + t] = ki[d] * ks;
          cache.v[((r * H + h) * cap + p0 + t) * D + d] = vi[d];
        }
      });
  for (int64_t r = 0; r < R; ++r)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < l; ++t) {
        const float* qv = q.data() + ((r * H + h) * l + t) * D;
        std::vector<double> s(static_cast<size_t>(key_limit[t]));
        double mx = -INFINITY;
        for (int j = 0; j < key_limit[t]; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += static_cast<double>(qv[d]) * cache.k[((r * H + h) * D + d) * cap + j];
          s[static_cast<size_t>(j)] = acc;
          mx = std::max(mx, acc);
        }
        double denom = 0;
        for (auto& x : s) denom += (x = std::exp(x - mx));
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int j = 0; j < key_limit[t]; ++j)
            acc += s[static_cast<size_t>(j)] * cache.v[((r * H + h) * cap + j) * D + d];
          out[(r * l + t) * C + h * D + d] = static_cast<float>(acc / denom);
        }
      }
}

Tensor vae_attention_reference(const Tensor& qkv) {
  const int64_t B = qkv.dim(0), C = qkv.dim(1) / 3, N = qkv.dim(2) * qkv.dim(3);
  Tensor h = Tensor::empty(DType::f32, {B, C, qkv.dim(2), qkv.dim(3)});  // [B, C, H, W]
  for (int64_t b = 0; b < B; ++b) {
    const float* q = qkv.data<float>() + b * 3 * C * N;
    const float* k = q + C * N;
    const float* v = k + C * N;
    for (int64_t j = 0; j < N; ++j) {
      std::vector<double> w(static_cast<size_t>(N));
      double mx = -INFINITY, sum = 0;
      for (int64_t i = 0; i < N; ++i) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(q[c * N + j]) * k[c * N + i];
        w[static_cast<size_t>(i)] = s / std::sqrt(static_cast<double>(C));
        mx = std::max(mx, w[static_cast<size_t>(i)]);
      }
      for (auto& x : w) sum += (x = std::exp(x - mx));
      for (int64_t c = 0; c < C; ++c) {
        double acc = 0;
        for (int64_t i = 0; i < N; ++i) acc += v[c * N + i] * w[static_cast<size_t>(i)] / sum;
        h.data<float>()[(b * C + c) * N + j] = static_cast<float>(acc);
      }
    }
  }
  return h;
}

}  // namespace varcode::kernels::cpu
