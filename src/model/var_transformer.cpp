#include "model/var_transformer.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/cpu/adaln.hpp"
#include "kernels/cpu/silu.hpp"

namespace varcode::model {

VarTransformer::VarTransformer(const io::Checkpoint& ckpt, DType weight_dtype, bool check_only) : path_(ckpt.path) {
  WeightSource ws(ckpt, check_only);
  load(ckpt, ws, weight_dtype);
}

VarTransformer::VarTransformer(io::Checkpoint&& ckpt, DType weight_dtype) : path_(ckpt.path) {
  WeightSource ws = WeightSource::consuming(ckpt);
  load(ckpt, ws, weight_dtype);
}

void VarTransformer::load(const io::Checkpoint& ckpt, WeightSource& ws, DType weight_dtype) {
  cfg_ = infer_var_config(ckpt);
  // VARCODE_KV_CACHE=f32 keeps f32 attention under bf16 weights (precision checks, A/B timing).
  const char* kv_env = std::getenv("VARCODE_KV_CACHE");
  const std::string kv = kv_env ? kv_env : "";
  if (!kv.empty() && kv != "f32" && kv != "auto") throw Error("VARCODE_KV_CACHE must be f32 or auto, got '" + kv + "'");
  bf16_cache_ = (weight_dtype == DType::bf16 || weight_dtype == DType::i8) && kv != "f32" &&
                kernels::cpu::default_bf16_backend() == kernels::cpu::GemmBackend::avx512bf16 &&
                kernels::cpu::bf16_attention_supported();
  // VARCODE_ADALN_DTYPE=f32|bf16|int8 holds the AdaLN linears (the blocks', shared and the head's)
  // in that dtype instead of weight_dtype: the A/B of their precision (README, int8).
  const char* ada_env = std::getenv("VARCODE_ADALN_DTYPE");
  const DType ada_dtype = ada_env && *ada_env ? parse_dtype(ada_env, "VARCODE_ADALN_DTYPE") : weight_dtype;
  if (ada_dtype != DType::f32 && ada_dtype != DType::bf16 && ada_dtype != DType::i8)
    throw Error("VARCODE_ADALN_DTYPE must be f32, bf16 or int8");
  const int64_t C = cfg_.width, L = cfg_.total_tokens(), SN = cfg_.num_scales();
  class_emb_ = ws.take("class_emb.weight", {cfg_.num_classes + 1, C});  // [classes + 1, C]
  pos_start_ = ws.take("pos_start", {1, 1, C}).reshape({C});            // [C]
  Tensor pos = ws.take("pos_1LC", {1, L, C});                           // [1, L, C]
  Tensor lvl_embed = ws.take("lvl_embed.weight", {SN, C});              // [SN, C]
  level_.resize(static_cast<size_t>(L));
  for (int si = 0; si < SN; ++si)
    for (int i = cfg_.scale_begin(si); i < cfg_.scale_end(si); ++i) level_[static_cast<size_t>(i)] = si;
  lvl_pos_ = Tensor::empty(DType::f32, {L, C});  // [L, C]
  for (int64_t i = 0; i < L; ++i)
    for (int64_t c = 0; c < C; ++c)
      lvl_pos_.data<float>()[i * C + c] =
          lvl_embed.data<float>()[level_[static_cast<size_t>(i)] * C + c] + pos.data<float>()[i * C + c];
  for (const char* buffer : {"lvl_1L", "attn_bias_for_masking"})
    if (ckpt.has(buffer)) ws.ignore(buffer);
  word_embed_ = ws.linear("word_embed.", C, cfg_.cvae, DType::f32);                          // [C, Cvae]
  if (cfg_.shared_adaln) shared_ada_ = ws.linear("shared_ada_lin.1.", 6 * C, C, ada_dtype);  // [6C, C]
  blocks_.reserve(static_cast<size_t>(cfg_.depth));
  for (int b = 0; b < cfg_.depth; ++b)
    blocks_.emplace_back(ws, b, cfg_.width, cfg_.heads, cfg_.shared_adaln, weight_dtype, ada_dtype);
  head_nm_ada_ = ws.linear("head_nm.ada_lin.1.", 2 * C, C, ada_dtype);  // [2C, C]
  // The reference computes the head in f32 whatever the autocast dtype: keep it f32.
  head_ = ws.linear("head.", cfg_.vocab, C, DType::f32);  // [V, C]
  ws.finish();
  if (ws.check_only()) compute_weights_ = ws.weights_in(weight_dtype);
}

VarState VarTransformer::start(const std::vector<int>& labels, int64_t capacity) const {
  const int64_t B = static_cast<int64_t>(labels.size()), R = 2 * B, C = cfg_.width, H = cfg_.heads;
  VarState st;
  st.rows = R;
  // Rounded up so that the bf16 layouts hold whole 64-position panels.
  st.capacity = (capacity + kernels::cpu::KvView::kCapacityAlign - 1) / kernels::cpu::KvView::kCapacityAlign *
                kernels::cpu::KvView::kCapacityAlign;
  st.cond = Tensor::empty(DType::f32, {R, C});  // [R, C]
  for (int64_t r = 0; r < R; ++r) {
    const int label = r < B ? labels[static_cast<size_t>(r)] : cfg_.num_classes;
    if (label < 0 || label > cfg_.num_classes)
      throw Error("class " + std::to_string(label) + " is outside [0, " + std::to_string(cfg_.num_classes) + ")");
    std::memcpy(st.cond.data<float>() + r * C, class_emb_.data<float>() + label * C,
                sizeof(float) * static_cast<size_t>(C));
  }
  Tensor silu_cond = st.cond.clone();  // [R, C]
  kernels::cpu::silu_inplace(silu_cond);
  Tensor shared;  // [R, 6C]
  if (cfg_.shared_adaln) {
    shared = Tensor::empty(DType::f32, {R, 6 * C});
    shared_ada_.forward(silu_cond.data<float>(), R, shared.data<float>());
  }
  st.block_mod = Tensor::empty(DType::f32, {cfg_.depth, R, 6 * C});  // [depth, R, 6C]
  for (int b = 0; b < cfg_.depth; ++b)
    blocks_[static_cast<size_t>(b)].modulation(silu_cond.data<float>(),
                                               cfg_.shared_adaln ? shared.data<float>() : nullptr, R,
                                               st.block_mod.data<float>() + b * R * 6 * C);
  st.head_mod = Tensor::empty(DType::f32, {R, 2 * C});  // [R, 2C]
  head_nm_ada_.forward(silu_cond.data<float>(), R, st.head_mod.data<float>());
  // bf16 caches are zeroed: the kernel reads whole key panels and position pairs past the
  // filled positions (and multiplies them by zero weights).
  for (int b = 0; b < cfg_.depth; ++b) {
    if (bf16_cache_) {
      st.k_cache.push_back(Tensor::zeros(DType::bf16, {R, H, st.capacity, 64}));  // [R, H, cap, 64] panels
      st.v_cache.push_back(Tensor::zeros(DType::bf16, {R, H, st.capacity, 64}));  // [R, H, cap, 64] pairs
    } else {
      st.k_cache.push_back(Tensor::empty(DType::f32, {R, H, st.capacity, 64}));  // [R, H, 64, cap]
      st.v_cache.push_back(Tensor::empty(DType::f32, {R, H, st.capacity, 64}));  // [R, H, cap, 64]
    }
  }
  return st;
}

void VarTransformer::first_input(const VarState& st, float* x) const {
  const int64_t C = cfg_.width;
  for (int64_t r = 0; r < st.rows; ++r)
    for (int64_t c = 0; c < C; ++c)
      x[r * C + c] = st.cond.data<float>()[r * C + c] + pos_start_.data<float>()[c] + lvl_pos_.data<float>()[c];
}

void VarTransformer::embed(const VarState& st, const float* tokens_in, int64_t n, int64_t p0, float* x) const {
  const int64_t B = st.rows / 2, C = cfg_.width;
  word_embed_.forward(tokens_in, B * n, x);  // [B, n, C]
  const float* lp = lvl_pos_.data<float>() + p0 * C;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < C; ++c) x[(b * n + t) * C + c] += lp[t * C + c];
  std::memcpy(x + B * n * C, x, sizeof(float) * static_cast<size_t>(B * n * C));  // uncond rows
}

void VarTransformer::blocks(VarState& st, float* x, int64_t l, int64_t p0) const {
  if (p0 + l > st.capacity)
    throw Error("internal: KV cache of " + std::to_string(st.capacity) + " positions cannot hold " +
                std::to_string(p0 + l));
  if (p0 != st.filled) throw Error("internal: positions must be fed in order");
  std::vector<int> key_limit(static_cast<size_t>(l));
  for (int64_t t = 0; t < l; ++t) key_limit[static_cast<size_t>(t)] = cfg_.scale_end(level_of(p0 + t));
  // Rows run in chunks of at most ~kChunkTokens tokens: rows are independent, so the result is
  // the same, and a batch's late scales then run at the shapes where batch 1 is fastest (at 1600
  // rows the GEMMs lost ~4% and the row-wise kernels more, out of L2), while its early scales,
  // bound by streaming the weights, still read them once for the whole batch.
  constexpr int64_t kChunkTokens = 512;
  const int64_t chunk = std::clamp<int64_t>(kChunkTokens / l, 1, st.rows);
  const int64_t C = cfg_.width, C6 = 6 * C, H = cfg_.heads;
  for (int b = 0; b < cfg_.depth; ++b) {
    Tensor& kc = st.k_cache[static_cast<size_t>(b)];
    Tensor& vc = st.v_cache[static_cast<size_t>(b)];
    for (int64_t r0 = 0; r0 < st.rows; r0 += chunk) {
      const int64_t rows = std::min(chunk, st.rows - r0), off = r0 * H * st.capacity * 64;  // cache rows [r0, r0 + rows)
      kernels::cpu::KvView cache{.rows = rows, .heads = cfg_.heads, .capacity = st.capacity};
      if (kc.dtype() == DType::bf16) {
        cache.k16 = static_cast<uint16_t*>(kc.raw()) + off;
        cache.v16 = static_cast<uint16_t*>(vc.raw()) + off;
      } else {
        cache.k = kc.data<float>() + off;
        cache.v = vc.data<float>() + off;
      }
      blocks_[static_cast<size_t>(b)].forward(x + r0 * l * C, rows, l, p0, key_limit.data(),
                                              st.block_mod.data<float>() + (b * st.rows + r0) * C6, cache, st.scratch);
    }
  }
  st.filled = p0 + l;
}

void VarTransformer::head(VarState& st, const float* x, int64_t l, int64_t from, int64_t n, float* logits) const {
  const int64_t R = st.rows, C = cfg_.width;
  if (!st.head_h.defined() || st.head_h.numel() < R * n * C) st.head_h = Tensor::empty(DType::f32, {R, n, C});
  float* h = st.head_h.data<float>();  // [R, n, C]
  for (int64_t r = 0; r < R; ++r)
    std::memcpy(h + r * n * C, x + (r * l + from) * C, sizeof(float) * static_cast<size_t>(n * C));
  const float* scale = st.head_mod.data<float>();
  const float* shift = st.head_mod.data<float>() + C;
  kernels::cpu::adaln_modulate(h, R, n, C, scale, shift, 2 * C, h);
  head_.forward(h, R * n, logits);  // [R, n, V]
}

}  // namespace varcode::model
