#include "model/transformer_block.hpp"

#include <cstring>

namespace varcode::model {

namespace {
void ensure(const backend::Backend& be, Tensor& t, int64_t rows, int64_t l, int64_t c) {
  if (!t.defined() || t.numel() < rows * l * c || t.numel() == 0) t = be.alloc(DType::f32, {rows * l * c});
}
}  // namespace

void BlockScratch::reserve(const backend::Backend& be, int64_t rows, int64_t l, int64_t c) {
  ensure(be, h, rows, l, c);
  ensure(be, qkv, rows, l, 3 * c);
  ensure(be, attn, rows, l, c);
  ensure(be, y, rows, l, c);
  ensure(be, mlp, rows, l, 4 * c);
}

TransformerBlock::TransformerBlock(WeightSource& ws, int index, int width, int heads, bool shared_adaln,
                                   DType weight_dtype, DType ada_dtype)
    : be_(ws.backend()), c_(width), heads_(heads), shared_adaln_(shared_adaln) {
  const std::string p = "blocks." + std::to_string(index) + ".";
  const int64_t C = width;
  if (shared_adaln) {
    ada_gss_ = ws.constant(p + "ada_gss", {1, 1, 6, C});  // [1, 1, 6, C]
  } else {
    ada_lin_ = ws.linear(p + "ada_lin.1.", 6 * C, C, ada_dtype);  // [6C, C]
  }
  // The qkv bias is assembled on the host from the file's parts before the backend packs it.
  Tensor q_bias = ws.take(p + "attn.q_bias", {C});       // [C]
  Tensor v_bias = ws.take(p + "attn.v_bias", {C});       // [C]
  ws.take(p + "attn.zero_k_bias", {C});                  // [C] always zero: the k bias below
  Tensor qkv_bias = Tensor::zeros(DType::f32, {3 * C});  // [3C] = (q_bias, 0, v_bias)
  std::memcpy(qkv_bias.data<float>(), q_bias.data<float>(), sizeof(float) * static_cast<size_t>(C));
  std::memcpy(qkv_bias.data<float>() + 2 * C, v_bias.data<float>(), sizeof(float) * static_cast<size_t>(C));
  qkv_ = ws.linear(p + "attn.mat_qkv.weight", 3 * C, C, weight_dtype, qkv_bias);           // [3C, C]
  scale_mul_ = ws.constant(p + "attn.scale_mul_1H11", {1, heads, 1, 1}).reshape({heads});  // [H]
  proj_ = ws.linear(p + "attn.proj.", C, C, weight_dtype);                                 // [C, C]
  fc1_ = ws.linear(p + "ffn.fc1.", 4 * C, C, weight_dtype);                                // [4C, C]
  fc2_ = ws.linear(p + "ffn.fc2.", C, 4 * C, weight_dtype);                                // [C, 4C]
}

void TransformerBlock::modulation(const float* silu_cond, const float* shared, int64_t rows, float* mod) const {
  const int64_t C6 = 6 * static_cast<int64_t>(c_);
  if (shared_adaln_) {
    be_.add_rows(shared, rows, C6, ada_gss_.data<float>(), mod);  // [R, 6C]
  } else {
    be_.linear(*ada_lin_, silu_cond, rows, mod);  // [R, 6C]
  }
}

void TransformerBlock::forward(float* x, int64_t rows, int64_t l, int64_t p0, std::span<const int> key_limit,
                               const float* mod, backend::KvCache& cache, int64_t r0, BlockScratch& s) const {
  const int64_t C = c_, C6 = 6 * C, M = rows * l;
  s.reserve(be_, rows, l, C);
  const float* gamma1 = mod;
  const float* gamma2 = mod + C;
  const float* scale1 = mod + 2 * C;
  const float* scale2 = mod + 3 * C;
  const float* shift1 = mod + 4 * C;
  const float* shift2 = mod + 5 * C;
  float* h = s.h.data<float>();        // [R, l, C]
  float* qkv = s.qkv.data<float>();    // [R, l, 3C]
  float* attn = s.attn.data<float>();  // [R, l, C]
  float* y = s.y.data<float>();        // [R, l, C]
  float* mlp = s.mlp.data<float>();    // [R, l, 4C]

  be_.adaln_modulate(x, rows, l, C, scale1, shift1, C6, h);
  be_.linear(*qkv_, h, M, qkv);
  be_.attention(cache, r0, rows, qkv, l, p0, scale_mul_.data<float>(), key_limit, attn);
  be_.linear(*proj_, attn, M, y);
  be_.gated_residual_add(x, y, rows, l, C, gamma1, C6);

  be_.adaln_modulate(x, rows, l, C, scale2, shift2, C6, h);
  be_.linear(*fc1_, h, M, mlp, backend::Epilogue::gelu_tanh);
  be_.linear(*fc2_, mlp, M, y);
  be_.gated_residual_add(x, y, rows, l, C, gamma2, C6);
}

}  // namespace varcode::model
