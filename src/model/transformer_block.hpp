// One VAR transformer block: AdaLN self-attention with l2-normalised attention, then an AdaLN
// GELU-tanh MLP (spec §3.3, §3.4).
#pragma once
#include <span>
#include <string>

#include "backend/backend.hpp"
#include "model/weights.hpp"
#include "varcode/tensor.hpp"

namespace varcode::model {

// Scratch a block needs for l tokens of R rows, on the backend's device; owned by the per-request
// state, reused.
struct BlockScratch {
  Tensor h;     // [R, l, C]   modulated LN output
  Tensor qkv;   // [R, l, 3C]
  Tensor attn;  // [R, l, C]
  Tensor y;     // [R, l, C]
  Tensor mlp;   // [R, l, 4C]
  void reserve(const backend::Backend& be, int64_t rows, int64_t l, int64_t c);
};

class TransformerBlock {
 public:
  // Loads blocks.<index>.* (or the shared-AdaLN form with ada_gss when `shared_adaln`); the
  // attention and MLP matrices in weight_dtype, the AdaLN one in ada_dtype.
  TransformerBlock(WeightSource& ws, int index, int width, int heads, bool shared_adaln, DType weight_dtype,
                   DType ada_dtype);

  // Per-row modulation from SiLU(cond): `silu_cond` [R, C] -> `mod` [R, 6C] (gamma1, gamma2,
  // scale1, scale2, shift1, shift2). With shared AdaLN, `shared` holds Linear_shared(SiLU(cond))
  // [R, 6C] and this adds the block's ada_gss.
  void modulation(const float* silu_cond, const float* shared, int64_t rows, float* mod) const;

  // x [R, l, C] at positions [p0, p0 + l), updated in place; rows [r0, r0 + R) of `cache` get
  // those positions.
  void forward(float* x, int64_t rows, int64_t l, int64_t p0, std::span<const int> key_limit, const float* mod,
               backend::KvCache& cache, int64_t r0, BlockScratch& s) const;

 private:
  const backend::Backend& be_;
  int c_ = 0, heads_ = 0;
  bool shared_adaln_ = false;
  LinearPtr ada_lin_;  // [6C, C] (absent with shared AdaLN)
  Tensor ada_gss_;     // [6, C] (shared AdaLN only)
  LinearPtr qkv_;      // [3C, C], bias = (q_bias, 0, v_bias)
  Tensor scale_mul_;   // [H]
  LinearPtr proj_;     // [C, C]
  LinearPtr fc1_;      // [4C, C]
  LinearPtr fc2_;      // [C, 4C]
};

}  // namespace varcode::model
