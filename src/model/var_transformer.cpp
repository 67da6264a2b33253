#include "model/var_transformer.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace varcode::model {

VarTransformer::VarTransformer(const io::Checkpoint& ckpt, DType weight_dtype, bool check_only,
                               std::shared_ptr<const backend::Backend> be)
    : be_(std::move(be)), path_(ckpt.path) {
  WeightSource ws(ckpt, check_only, be_);
  load(ckpt, ws, weight_dtype);
}

VarTransformer::VarTransformer(io::Checkpoint&& ckpt, DType weight_dtype, std::shared_ptr<const backend::Backend> be)
    : be_(std::move(be)), path_(ckpt.path) {
  WeightSource ws = WeightSource::consuming(ckpt, be_);
  load(ckpt, ws, weight_dtype);
}

void VarTransformer::load(const io::Checkpoint& ckpt, WeightSource& ws, DType weight_dtype) {
  cfg_ = infer_var_config(ckpt);
  weight_dtype_ = weight_dtype;
  const backend::Backend& be = *be_;
  // VARCODE_ADALN_DTYPE=f32|bf16|int8 holds the AdaLN linears (the blocks', shared and the head's)
  // in that dtype instead of weight_dtype: the A/B of their precision (README, int8).
  const char* ada_env = std::getenv("VARCODE_ADALN_DTYPE");
  const DType ada_dtype = ada_env && *ada_env ? parse_dtype(ada_env, "VARCODE_ADALN_DTYPE") : weight_dtype;
  if (ada_dtype != DType::f32 && ada_dtype != DType::bf16 && ada_dtype != DType::i8)
    throw Error("VARCODE_ADALN_DTYPE must be f32, bf16 or int8");
  const int64_t C = cfg_.width, L = cfg_.total_tokens(), SN = cfg_.num_scales();
  class_emb_ = ws.constant("class_emb.weight", {cfg_.num_classes + 1, C});  // [classes + 1, C]
  Tensor pos_start = ws.constant("pos_start", {1, 1, C});                   // [1, 1, C]
  Tensor pos = ws.constant("pos_1LC", {1, L, C});                           // [1, L, C]
  Tensor lvl_embed = ws.constant("lvl_embed.weight", {SN, C});              // [SN, C]
  level_.resize(static_cast<size_t>(L));
  for (int si = 0; si < SN; ++si)
    for (int i = cfg_.scale_begin(si); i < cfg_.scale_end(si); ++i) level_[static_cast<size_t>(i)] = si;
  if (!ws.check_only()) {
    Tensor level_host = Tensor::empty(DType::f32, {L});  // [L] int32 level of each position (4-byte slots)
    std::copy(level_.begin(), level_.end(), static_cast<int32_t*>(level_host.raw()));
    Tensor level = be.to_device(level_host);  // [L]
    lvl_pos_ = be.alloc(DType::f32, {L, C});  // [L, C]
    be.gather_rows(lvl_embed.data<float>(), C, static_cast<const int32_t*>(level.raw()), L, lvl_pos_.data<float>());
    be.axpby(1.0f, lvl_pos_.data<float>(), 1.0f, pos.data<float>(), L * C, lvl_pos_.data<float>());
    first_pos_ = be.alloc(DType::f32, {C});  // [C]
    be.axpby(1.0f, pos_start.data<float>(), 1.0f, lvl_pos_.data<float>(), C, first_pos_.data<float>());
  }
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
  const backend::Backend& be = *be_;
  const int64_t B = static_cast<int64_t>(labels.size()), R = 2 * B, C = cfg_.width, H = cfg_.heads;
  VarState st;
  st.rows = R;
  Tensor label_host = Tensor::empty(DType::f32, {R});  // [R] int32 class of each row (4-byte slots)
  for (int64_t r = 0; r < R; ++r) {
    const int label = r < B ? labels[static_cast<size_t>(r)] : cfg_.num_classes;
    if (label < 0 || label > cfg_.num_classes)
      throw Error("class " + std::to_string(label) + " is outside [0, " + std::to_string(cfg_.num_classes) + ")");
    static_cast<int32_t*>(label_host.raw())[r] = label;
  }
  Tensor label = be.to_device(label_host);  // [R]
  st.cond = be.alloc(DType::f32, {R, C});   // [R, C]
  be.gather_rows(class_emb_.data<float>(), C, static_cast<const int32_t*>(label.raw()), R, st.cond.data<float>());
  Tensor silu_cond = be.alloc(DType::f32, {R, C});  // [R, C]
  be.silu(st.cond.data<float>(), R * C, silu_cond.data<float>());
  Tensor shared;  // [R, 6C]
  if (cfg_.shared_adaln) {
    shared = be.alloc(DType::f32, {R, 6 * C});
    be.linear(*shared_ada_, silu_cond.data<float>(), R, shared.data<float>());
  }
  st.block_mod = be.alloc(DType::f32, {cfg_.depth, R, 6 * C});  // [depth, R, 6C]
  for (int b = 0; b < cfg_.depth; ++b)
    blocks_[static_cast<size_t>(b)].modulation(silu_cond.data<float>(),
                                               cfg_.shared_adaln ? shared.data<float>() : nullptr, R,
                                               st.block_mod.data<float>() + b * R * 6 * C);
  st.head_mod = be.alloc(DType::f32, {R, 2 * C});  // [R, 2C]
  be.linear(*head_nm_ada_, silu_cond.data<float>(), R, st.head_mod.data<float>());
  for (int b = 0; b < cfg_.depth; ++b) st.kv.push_back(be.kv_cache(R, H, capacity, weight_dtype_));
  st.capacity = st.kv.empty() ? capacity : st.kv.front()->capacity;
  return st;
}

void VarTransformer::first_input(const VarState& st, float* x) const {
  be_->add_rows(st.cond.data<float>(), st.rows, cfg_.width, first_pos_.data<float>(), x);  // [R, 1, C]
}

void VarTransformer::embed(const VarState& st, const float* tokens_in, int64_t n, int64_t p0, float* x) const {
  const backend::Backend& be = *be_;
  const int64_t B = st.rows / 2, C = cfg_.width;
  be.linear(*word_embed_, tokens_in, B * n, x);                  // [B, n, C]
  be.add_rows(x, B, n * C, lvl_pos_.data<float>() + p0 * C, x);  // + lvl_pos[p0 .. p0 + n)
  const int64_t bytes = B * n * C * static_cast<int64_t>(sizeof(float));
  be.copy_2d(x, bytes, x + B * n * C, bytes, bytes, 1);  // uncond rows [B, 2B)
}

void VarTransformer::blocks(VarState& st, float* x, int64_t l, int64_t p0) const {
  if (p0 + l > st.capacity)
    throw Error("internal: KV cache of " + std::to_string(st.capacity) + " positions cannot hold " +
                std::to_string(p0 + l));
  if (p0 != st.filled) throw Error("internal: positions must be fed in order");
  std::vector<int> key_limit(static_cast<size_t>(l));
  for (int64_t t = 0; t < l; ++t) key_limit[static_cast<size_t>(t)] = cfg_.scale_end(level_of(p0 + t));
  // Rows run in chunks of at most ~kChunkTokens tokens: rows are independent, so the result is
  // the same, and a batch's late scales then run at the shapes where batch 1 is fastest (large
  // GEMMs fall out of L2 and the row-wise kernels more), while its early scales, bound by
  // streaming the weights, still read them once for the whole batch.
  constexpr int64_t kChunkTokens = 512;
  const int64_t chunk = std::clamp<int64_t>(kChunkTokens / l, 1, st.rows);
  const int64_t C = cfg_.width, C6 = 6 * C;
  for (int b = 0; b < cfg_.depth; ++b) {
    for (int64_t r0 = 0; r0 < st.rows; r0 += chunk) {
      const int64_t rows = std::min(chunk, st.rows - r0);
      blocks_[static_cast<size_t>(b)].forward(x + r0 * l * C, rows, l, p0, key_limit,
                                              st.block_mod.data<float>() + (b * st.rows + r0) * C6,
                                              *st.kv[static_cast<size_t>(b)], r0, st.scratch);
    }
  }
  st.filled = p0 + l;
}

void VarTransformer::head(VarState& st, const float* x, int64_t l, int64_t from, int64_t n, float* logits) const {
  const backend::Backend& be = *be_;
  const int64_t R = st.rows, C = cfg_.width;
  if (!st.head_h.defined() || st.head_h.numel() < R * n * C) st.head_h = be.alloc(DType::f32, {R, n, C});
  float* h = st.head_h.data<float>();  // [R, n, C]
  const int64_t f = sizeof(float);
  be.copy_2d(x + from * C, l * C * f, h, n * C * f, n * C * f, R);  // tokens [from, from + n) of each row
  const float* scale = st.head_mod.data<float>();
  const float* shift = st.head_mod.data<float>() + C;
  be.adaln_modulate(h, R, n, C, scale, shift, 2 * C, h);
  be.linear(*head_, h, R * n, logits);  // [R, n, V]
}

}  // namespace varcode::model
