// The building blocks shared by the VQ-VAE encoder and decoder (spec §4.3): ResnetBlock and the
// single-head spatial AttnBlock, with GroupNorm(32, eps 1e-6) and SiLU.
#pragma once
#include <string>

#include "backend/backend.hpp"
#include "model/buffer_pool.hpp"
#include "model/weights.hpp"
#include "varcode/tensor.hpp"

namespace varcode::model {

constexpr int kVaeNormGroups = 32;
constexpr float kVaeNormEps = 1e-6f;

// How a forward pass runs. Activations are channels-last [B, H, W, C] end to end. The residual
// stream (block inputs and outputs, the convolutions' accumulation targets) is always f32; `act`
// is the dtype of the convolution inputs (the GroupNorm + SiLU and upsample outputs) and of the
// ResnetBlocks' inner map: bf16 halves their traffic and runs oneDNN's bf16 kernels, f32 keeps
// the decode exact. Every map comes from and goes back to `pool`.
struct VaeRun {
  const backend::Backend& be;
  BufferPool& pool;
  DType act = DType::f32;
};

struct VaeGroupNorm {
  Tensor gamma;  // [C]
  Tensor beta;   // [C]

  static VaeGroupNorm load(WeightSource& ws, const std::string& prefix, int channels);
  // x [B, H, W, C] -> y [B, H, W, C] (any f32 / bf16 mix; y may alias x when the dtypes match).
  void forward_nhwc(const VaeRun& run, const Tensor& x, bool fuse_silu, Tensor& y) const;
};

// The usual stride-1 "same" convolution, `prefix` + "weight" [out, in, k, k] and "bias" [out].
ConvPtr load_conv(WeightSource& ws, const std::string& prefix, int out_ch, int in_ch, int kernel);

// h = conv1(SiLU(norm1(x))); h = conv2(SiLU(norm2(h))); return shortcut(x) + h, where shortcut is
// a 1x1 conv (nin_shortcut) when the channel count changes, else the identity.
class ResnetBlock {
 public:
  static ResnetBlock load(WeightSource& ws, const std::string& prefix, int in_ch, int out_ch);
  // x [B, H, W, in_ch] f32 from run.pool -> [B, H, W, out_ch] f32 from run.pool. x is consumed:
  // updated in place (identity shortcut) or released.
  Tensor forward(Tensor x, const VaeRun& run) const;

 private:
  VaeGroupNorm norm1_, norm2_;
  ConvPtr conv1_, conv2_, nin_shortcut_;
};

// x + proj_out(attention(qkv(norm(x)))), one head over the H*W positions.
class AttnBlock {
 public:
  static AttnBlock load(WeightSource& ws, const std::string& prefix, int channels);
  // x [B, H, W, C] f32 from run.pool, updated in place and returned. The attention itself runs
  // in f32 (16 x 16 maps: a few ms).
  Tensor forward(Tensor x, const VaeRun& run) const;

 private:
  VaeGroupNorm norm_;
  ConvPtr qkv_, proj_out_;
};

}  // namespace varcode::model
