#include "kernels/cpu/vae_attention.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cpu/dnnl_context.hpp"

namespace varcode::kernels::cpu {

namespace {

using dnnl::memory;
using dims = memory::dims;

struct Plans {
  dnnl::matmul scores;  // q^T k: [B, N, C] x [B, C, N] -> [B, N, N]
  memory::desc q_md, k_md, s_md;
  dnnl::matmul mix;  // v w^T: [B, C, N] x [B, N, N] -> [B, C, N]
  memory::desc v_md, wt_md, h_md;
  memory::desc scores_scratch, mix_scratch;  // both run with thread_scratchpad (dnnl_context.hpp)
};

// Channels-last: q, k, v are [B, N, C] views of qkv [B, N, 3C] with row stride 3C.
const Plans& plans_nhwc_for(int64_t B, int64_t C, int64_t N) {
  static std::mutex mutex;
  static std::map<std::tuple<int64_t, int64_t, int64_t>, Plans> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_tuple(B, C, N);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const auto& eng = dnnl_engine();
  const auto f32 = memory::data_type::f32;
  const int64_t batch_stride = 3 * C * N;  // one image of qkv
  Plans p;
  p.q_md = memory::desc({B, N, C}, f32, dims{batch_stride, 3 * C, 1});
  p.k_md = memory::desc({B, C, N}, f32, dims{batch_stride, 1, 3 * C});  // k viewed transposed
  p.s_md = memory::desc({B, N, N}, f32, dims{N * N, N, 1});
  const dnnl::matmul::primitive_desc scores_pd(dnnl::matmul::desc(p.q_md, p.k_md, p.s_md), user_scratchpad_attr(), eng);
  p.scores = dnnl::matmul(scores_pd);
  p.scores_scratch = scores_pd.scratchpad_desc();
  // h [B, N, C] = w [B, N, N] x v [B, N, C]: the weights are the matmul's source here.
  p.wt_md = memory::desc({B, N, N}, f32, dims{N * N, N, 1});
  p.v_md = memory::desc({B, N, C}, f32, dims{batch_stride, 3 * C, 1});
  p.h_md = memory::desc({B, N, C}, f32, dims{N * C, C, 1});
  const dnnl::matmul::primitive_desc mix_pd(dnnl::matmul::desc(p.wt_md, p.v_md, p.h_md), user_scratchpad_attr(), eng);
  p.mix = dnnl::matmul(mix_pd);
  p.mix_scratch = mix_pd.scratchpad_desc();
  return cache.emplace(key, std::move(p)).first->second;
}

// Row softmax of the scaled scores in place. PyTorch scales the finished products by the float
// C^-0.5, then takes a softmax over keys. w [rows, N]
void scaled_softmax_rows(float* wp, int64_t rows, int64_t N, int64_t C) {
  const float ratio = static_cast<float>(std::pow(static_cast<double>(C), -0.5));
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    float* r = wp + row * N;
    float mx = -INFINITY;
    for (int64_t i = 0; i < N; ++i) {
      r[i] *= ratio;
      mx = std::max(mx, r[i]);
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < N; ++i) {
      r[i] = std::exp(r[i] - mx);
      sum += r[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < N; ++i) r[i] *= inv;
  }
}

}  // namespace

void vae_spatial_attention_nhwc(const Tensor& qkv, Tensor& h) {
  if (qkv.dtype() != DType::f32 || qkv.ndim() != 4 || qkv.dim(3) % 3 != 0)
    throw Error("vae_spatial_attention_nhwc: input must be f32 [B, H, W, 3C], got " + shape_str(qkv.shape()));
  const int64_t B = qkv.dim(0), C = qkv.dim(3) / 3, N = qkv.dim(1) * qkv.dim(2);
  const Shape want{B, qkv.dim(1), qkv.dim(2), C};
  if (h.dtype() != DType::f32 || h.shape() != want)
    throw Error("vae_spatial_attention_nhwc: output must be f32 " + shape_str(want) + ", got " + shape_str(h.shape()));
  if (h.numel() == 0) return;
  Tensor w = Tensor::empty(DType::f32, {B, N, N});  // [B, N(query), N(key)]

  const Plans& p = plans_nhwc_for(B, C, N);
  const auto& eng = dnnl_engine();
  auto& stream = dnnl_stream();
  float* base = const_cast<float*>(qkv.data<float>());
  memory q(p.q_md, eng, base), k(p.k_md, eng, base + C), v(p.v_md, eng, base + 2 * C);
  memory s(p.s_md, eng, w.raw()), wt(p.wt_md, eng, w.raw()), out(p.h_md, eng, h.raw());
  p.scores.execute(stream, {{DNNL_ARG_SRC, q},
                            {DNNL_ARG_WEIGHTS, k},
                            {DNNL_ARG_DST, s},
                            {DNNL_ARG_SCRATCHPAD, thread_scratchpad(p.scores_scratch)}});
  stream.wait();
  scaled_softmax_rows(w.data<float>(), B * N, N, C);
  p.mix.execute(stream, {{DNNL_ARG_SRC, wt},
                         {DNNL_ARG_WEIGHTS, v},
                         {DNNL_ARG_DST, out},
                         {DNNL_ARG_SCRATCHPAD, thread_scratchpad(p.mix_scratch)}});
  stream.wait();
}

}  // namespace varcode::kernels::cpu
