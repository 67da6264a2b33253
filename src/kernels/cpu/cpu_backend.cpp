#include "kernels/cpu/cpu_backend.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/adaln.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/channels_last.hpp"
#include "kernels/cpu/conv2d.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/resample.hpp"
#include "kernels/cpu/sampling.hpp"
#include "kernels/cpu/silu.hpp"
#include "kernels/cpu/vae_attention.hpp"

namespace varcode::kernels::cpu {

namespace {

struct CpuLinear final : backend::LinearWeights {
  Linear layer;
};

struct CpuConv final : backend::ConvWeights {
  Conv2d conv;
};

struct CpuCodebook final : backend::CodebookWeights {
  std::vector<double> emb_f64;  // [V, Cvae], for the argmin
  std::vector<double> emb_sq;   // [V], squared norms of the rows
};

struct CpuKvCache final : backend::KvCache {
  Tensor k, v;  // [R, H, capacity, 64] in one of KvView's two layouts (f32 or bf16)
};

// VARCODE_KV_CACHE=f32 keeps f32 attention under bf16 weights (precision checks, A/B timing).
bool bf16_cache_for(DType compute) {
  const char* kv_env = std::getenv("VARCODE_KV_CACHE");
  const std::string kv = kv_env ? kv_env : "";
  if (!kv.empty() && kv != "f32" && kv != "auto") throw Error("VARCODE_KV_CACHE must be f32 or auto, got '" + kv + "'");
  return (compute == DType::bf16 || compute == DType::i8) && kv != "f32" && default_bf16_backend() == GemmBackend::avx512bf16 &&
         bf16_attention_supported();
}

Conv2dGeometry geometry_of(backend::ConvGeometry g) {
  return {g.stride, g.pad_top, g.pad_left, g.pad_bottom, g.pad_right};
}

}  // namespace

// ---- memory --------------------------------------------------------------------------------------

Tensor CpuBackend::alloc(DType dtype, Shape shape) const { return Tensor::empty(dtype, std::move(shape)); }
Tensor CpuBackend::zeros(DType dtype, Shape shape) const { return Tensor::zeros(dtype, std::move(shape)); }
Tensor CpuBackend::to_device(const Tensor& host) const { return host.clone(); }
Tensor CpuBackend::to_host(const Tensor& t) const { return t.clone(); }

void CpuBackend::copy_2d(const void* src, int64_t src_pitch, void* dst, int64_t dst_pitch, int64_t row_bytes,
                         int64_t rows) const {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(static_cast<char*>(dst) + r * dst_pitch, static_cast<const char*>(src) + r * src_pitch,
                static_cast<size_t>(row_bytes));
}

// ---- weights -------------------------------------------------------------------------------------

std::shared_ptr<const backend::LinearWeights> CpuBackend::linear_weights(const Tensor& weight, const Tensor& bias,
                                                                         DType dtype) const {
  auto w = std::make_shared<CpuLinear>();
  w->out_features = weight.dim(0);
  w->in_features = weight.dim(1);
  w->dtype = dtype;
  if (dtype == DType::i8) {
    w->layer = Linear::quantize_int8(weight.dtype() == DType::f32 ? weight : weight.to(DType::f32), bias);
  } else {
    w->layer = Linear(weight.dtype() == dtype ? weight : weight.to(dtype), bias);  // packs a copy
  }
  return w;
}

std::shared_ptr<const backend::LinearWeights> CpuBackend::int8_linear_weights(const Tensor& q, const Tensor& scale,
                                                                              const Tensor& bias, DType dtype) const {
  const int64_t out = q.dim(0), in = q.dim(1);
  if (dtype == DType::i8) {
    auto w = std::make_shared<CpuLinear>();
    w->out_features = out;
    w->in_features = in;
    w->dtype = dtype;
    w->layer = Linear::int8(q, scale, bias);
    return w;
  }
  // Asked for floating point: the dequantised weight, q * scale, in that dtype.
  Tensor deq = Tensor::empty(DType::f32, {out, in});  // [out, in]
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c)
      deq.data<float>()[r * in + c] = static_cast<float>(q.data<int8_t>()[r * in + c]) * scale.data<float>()[r];
  return linear_weights(deq, bias, dtype);
}

std::shared_ptr<const backend::ConvWeights> CpuBackend::conv_weights(const Tensor& weight, const Tensor& bias,
                                                                     backend::ConvGeometry geometry) const {
  auto w = std::make_shared<CpuConv>();
  w->out_channels = static_cast<int>(weight.dim(0));
  w->in_channels = static_cast<int>(weight.dim(1));
  w->kernel = static_cast<int>(weight.dim(2));
  w->geometry = geometry;
  w->conv = Conv2d(weight, bias, geometry_of(geometry));
  return w;
}

std::shared_ptr<const backend::CodebookWeights> CpuBackend::codebook_weights(const Tensor& embedding) const {
  auto cb = std::make_shared<CpuCodebook>();
  cb->vocab = embedding.dim(0);
  cb->cvae = embedding.dim(1);
  cb->embedding = to_device(embedding);  // [V, Cvae]
  const float* e = embedding.data<float>();
  cb->emb_f64.assign(e, e + embedding.numel());
  cb->emb_sq.assign(static_cast<size_t>(cb->vocab), 0.0);
  for (int64_t v = 0; v < cb->vocab; ++v)
    for (int64_t c = 0; c < cb->cvae; ++c)
      cb->emb_sq[static_cast<size_t>(v)] +=
          cb->emb_f64[static_cast<size_t>(v * cb->cvae + c)] * cb->emb_f64[static_cast<size_t>(v * cb->cvae + c)];
  return cb;
}

// ---- transformer ---------------------------------------------------------------------------------

void CpuBackend::linear(const backend::LinearWeights& w, const float* x, int64_t m, float* y,
                        backend::Epilogue epilogue) const {
  static_cast<const CpuLinear&>(w).layer.forward(
      x, m, y, epilogue == backend::Epilogue::gelu_tanh ? Epilogue::gelu_tanh : Epilogue::none);
}

void CpuBackend::adaln_modulate(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale,
                                const float* shift, int64_t mod_stride, float* out) const {
  kernels::cpu::adaln_modulate(x, rows, l, c, scale, shift, mod_stride, out);
}

void CpuBackend::gated_residual_add(float* x, const float* y, int64_t rows, int64_t l, int64_t c, const float* gamma,
                                    int64_t mod_stride) const {
  kernels::cpu::gated_residual_add(x, y, rows, l, c, gamma, mod_stride);
}

void CpuBackend::silu(const float* x, int64_t n, float* y) const {
  if (x != y) std::memcpy(y, x, sizeof(float) * static_cast<size_t>(n));
  silu_inplace(y, n);
}

void CpuBackend::add_rows(const float* x, int64_t rows, int64_t n, const float* v, float* y) const {
#pragma omp parallel for if (rows * n > (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[r * n + i] = x[r * n + i] + v[i];
}

void CpuBackend::gather_rows(const float* table, int64_t n, const int32_t* idx, int64_t count, float* out) const {
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(out + i * n, table + static_cast<int64_t>(idx[i]) * n, sizeof(float) * static_cast<size_t>(n));
}

std::unique_ptr<backend::KvCache> CpuBackend::kv_cache(int64_t rows, int64_t heads, int64_t capacity,
                                                       DType compute) const {
  auto cache = std::make_unique<CpuKvCache>();
  cache->rows = rows;
  cache->heads = heads;
  // Rounded up so that the bf16 layouts hold whole 64-position panels.
  cache->capacity = (capacity + KvView::kCapacityAlign - 1) / KvView::kCapacityAlign * KvView::kCapacityAlign;
  const Shape shape{rows, heads, cache->capacity, KvView::kHeadDim};
  // bf16 caches are zeroed: the kernel reads whole key panels and position pairs past the filled
  // positions (and multiplies them by zero weights).
  if (bf16_cache_for(compute)) {
    cache->k = Tensor::zeros(DType::bf16, shape);  // [R, H, cap / 64, 32, 64, 2] key panels
    cache->v = Tensor::zeros(DType::bf16, shape);  // [R, H, cap / 2, 64, 2] position pairs
  } else {
    cache->k = Tensor::empty(DType::f32, shape);  // [R, H, 64, cap] keys transposed
    cache->v = Tensor::empty(DType::f32, shape);  // [R, H, cap, 64]
  }
  return cache;
}

void CpuBackend::attention(backend::KvCache& cache, int64_t r0, int64_t rows, const float* qkv, int64_t l, int64_t p0,
                           const float* scale_mul, std::span<const int> key_limit, float* out) const {
  auto& c = static_cast<CpuKvCache&>(cache);
  if (static_cast<int64_t>(key_limit.size()) != l) throw Error("internal: one key limit per query expected");
  const int64_t off = r0 * c.heads * c.capacity * KvView::kHeadDim;  // cache rows [r0, r0 + rows)
  KvView view{.rows = rows, .heads = c.heads, .capacity = c.capacity};
  if (c.k.dtype() == DType::bf16) {
    view.k16 = static_cast<uint16_t*>(c.k.raw()) + off;
    view.v16 = static_cast<uint16_t*>(c.v.raw()) + off;
  } else {
    view.k = c.k.data<float>() + off;
    view.v = c.v.data<float>() + off;
  }
  l2norm_attention(qkv, l, p0, scale_mul, key_limit.data(), view, out);
}

// ---- head, guidance, sampling --------------------------------------------------------------------

void CpuBackend::cfg(const float* logits, int64_t batch, int64_t n, int64_t vocab, const backend::ImageDraw* draws,
                     double ratio, float* out) const {
  // Images sharing one strength (a plain request) go through in one call, as one image would.
  const int64_t row = n * vocab;
  for (int64_t b0 = 0; b0 < batch;) {
    int64_t b1 = b0 + 1;
    while (b1 < batch && draws[b1].cfg == draws[b0].cfg) ++b1;
    apply_cfg_rows(logits + b0 * row, logits + (batch + b0) * row, (b1 - b0) * row, draws[b0].cfg * ratio,
                   out + b0 * row);
    b0 = b1;
  }
}

void CpuBackend::sample(const backend::SampleArgs& a) const {
  const auto& cb = static_cast<const CpuCodebook&>(*a.codebook);
  const float* codebook = cb.embedding.data<float>();  // [V, Cvae]
  const int64_t cvae = cb.cvae, vocab = a.vocab, l = a.l;
  const auto si = static_cast<uint32_t>(a.scale);
#pragma omp parallel for schedule(dynamic, 1) if (a.batch * l > 1)
  for (int64_t i = 0; i < a.batch * l; ++i) {
    const int64_t b = i / l, t = i % l;
    const backend::ImageDraw& d = a.draws[b];
    const FilterParams fp{d.top_k, d.top_p, d.temperature[si]};
    const CounterRng rng{d.seed};
    float* lg = a.logits + i * vocab;
    const uint32_t img = d.image_index;
    const double u = rng.uniform(img, si, static_cast<uint32_t>(t), 0);
    const int idx = sample_token(lg, static_cast<int>(vocab), fp, u);  // lg is now filtered
    a.tokens[b * a.token_stride + a.token_begin + t] = idx;
    float* hi = a.h + i * cvae;
    if (!d.smooth) {
      std::memcpy(hi, codebook + idx * cvae, sizeof(float) * static_cast<size_t>(cvae));
      continue;
    }
    // more_smooth: softmax((filtered * (1 + ratio) + gumbel) / tau) @ codebook.
    const double ratio = a.smooth_ratio;
    const double tau = std::max(0.27 * (1 - 0.95 * ratio), 0.005);
    std::vector<double> w(static_cast<size_t>(vocab));
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < vocab; ++v) {
      if (std::isinf(lg[v])) {
        w[static_cast<size_t>(v)] = -std::numeric_limits<double>::infinity();
        continue;
      }
      const double g = -std::log(
          -std::log(std::max(rng.uniform(img, si, static_cast<uint32_t>(t), static_cast<uint32_t>(1 + v)), 1e-300)));
      w[static_cast<size_t>(v)] = (lg[v] * (1 + ratio) + g) / tau;
      mx = std::max(mx, w[static_cast<size_t>(v)]);
    }
    double z = 0;
    for (double& x : w) z += (x = std::isinf(x) ? 0.0 : std::exp(x - mx));
    for (int64_t c = 0; c < cvae; ++c) hi[c] = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double p = w[static_cast<size_t>(v)] / z;
      if (p == 0) continue;
      for (int64_t c = 0; c < cvae; ++c) hi[c] += static_cast<float>(p * codebook[v * cvae + c]);
    }
  }
}

void CpuBackend::embed_tokens(const backend::CodebookWeights& codebook, const int64_t* idx, int64_t n, float* h) const {
  const auto& cb = static_cast<const CpuCodebook&>(codebook);
  const float* e = cb.embedding.data<float>();
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(h + i * cb.cvae, e + idx[i] * cb.cvae, sizeof(float) * static_cast<size_t>(cb.cvae));
}

void CpuBackend::nearest_code(const backend::CodebookWeights& codebook, const float* z, int64_t n, int64_t* idx) const {
  const auto& cb = static_cast<const CpuCodebook&>(codebook);
  const int64_t C = cb.cvae, V = cb.vocab;
  // argmin_v ||z - e_v||^2 = argmin_v (||e_v||^2 - 2 z.e_v), in float64 so that only genuine
  // near-ties could come out differently from the reference's float32 distances.
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    std::vector<double> zd(z + row * C, z + (row + 1) * C);  // [Cvae]
    double best = INFINITY;
    int64_t best_v = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double* e = cb.emb_f64.data() + v * C;
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < C; ++c) dot += zd[static_cast<size_t>(c)] * e[c];
      const double d = cb.emb_sq[static_cast<size_t>(v)] - 2.0 * dot;
      if (d < best) {
        best = d;
        best_v = v;
      }
    }
    idx[row] = best_v;
  }
}

// ---- latent maps ---------------------------------------------------------------------------------

void CpuBackend::to_channel_major(const Tensor& x, Tensor& y) const {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  const float* xp = x.data<float>();  // [B, L, C]
  float* yp = y.data<float>();        // [B, C, h, w]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < C; ++c) yp[(b * C + c) * L + l] = xp[(b * L + l) * C + c];
}

void CpuBackend::to_token_major(const Tensor& x, Tensor& y) const {
  const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
  const float* xp = x.data<float>();  // [B, C, h, w]
  float* yp = y.data<float>();        // [B, L, C]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) yp[(b * L + l) * C + c] = xp[(b * C + c) * L + l];
}

void CpuBackend::bicubic_resize(const Tensor& x, Tensor& y) const { bicubic_up(x, y); }
void CpuBackend::area_resize(const Tensor& x, Tensor& y) const { area_down(x, y); }

void CpuBackend::axpby(float a, const float* x, float b, const float* y, int64_t n, float* out) const {
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * a + y[i] * b;
}

void CpuBackend::blend(float* f_hat, const float* gt, const float* keep, int64_t batch, int64_t c, int64_t pp) const {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < pp; ++p) {
        float& x = f_hat[(b * c + ch) * pp + p];
        x = x * (1 - keep[p]) + gt[ch * pp + p] * keep[p];
      }
}

void CpuBackend::add_mul(const float* x, int64_t n, float add, float mul, float* out) const {
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] + add) * mul;
}

// ---- convolutional VQ-VAE ------------------------------------------------------------------------

void CpuBackend::conv2d(const backend::ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const {
  static_cast<const CpuConv&>(w).conv.forward_into(x, y, accumulate);
}

void CpuBackend::conv2d_nhwc(const backend::ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const {
  static_cast<const CpuConv&>(w).conv.forward_nhwc(x, y, accumulate);
}

void CpuBackend::group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                                 bool fuse_silu, Tensor& y) const {
  kernels::cpu::group_norm_nhwc(x, gamma, beta, groups, eps, fuse_silu, y);
}

void CpuBackend::upsample_nearest2x_nhwc(const Tensor& x, Tensor& y) const {
  kernels::cpu::upsample_nearest2x_nhwc(x, y);
}

void CpuBackend::vae_attention_nhwc(const Tensor& qkv, Tensor& h) const { vae_spatial_attention_nhwc(qkv, h); }

void CpuBackend::nchw_to_nhwc(const Tensor& x, Tensor& y) const { kernels::cpu::nchw_to_nhwc(x, y); }

void CpuBackend::nhwc_to_nchw(const Tensor& x, Tensor& y, float lo, float hi) const {
  kernels::cpu::nhwc_to_nchw(x, y, lo, hi);
}

}  // namespace varcode::kernels::cpu

namespace varcode::backend {

std::shared_ptr<const Backend> cpu_backend() {
  static const std::shared_ptr<const Backend> instance = std::make_shared<kernels::cpu::CpuBackend>();
  return instance;
}

}  // namespace varcode::backend
