// The building blocks shared by the VQ-VAE encoder and decoder (spec §4.3): ResnetBlock and the
// single-head spatial AttnBlock, with GroupNorm(32, eps 1e-6) and SiLU.
#pragma once
#include <string>

#include "kernels/cpu/conv2d.hpp"
#include "model/weights.hpp"
#include "varcode/tensor.hpp"

namespace varcode::model {

constexpr int kVaeNormGroups = 32;
constexpr float kVaeNormEps = 1e-6f;

struct VaeGroupNorm {
  Tensor gamma;  // [C]
  Tensor beta;   // [C]

  static VaeGroupNorm load(WeightSource& ws, const std::string& prefix, int channels);
  // x [B, C, H, W] -> [B, C, H, W]
  Tensor forward(const Tensor& x, bool fuse_silu) const;
};

// `prefix` + "weight" [out, in, k, k] and "bias" [out].
kernels::cpu::Conv2d load_conv(WeightSource& ws, const std::string& prefix, int out_ch, int in_ch, int kernel,
                               kernels::cpu::Conv2dGeometry geometry);
// The usual stride-1 "same" convolution.
kernels::cpu::Conv2d load_conv(WeightSource& ws, const std::string& prefix, int out_ch, int in_ch, int kernel);

// h = conv1(SiLU(norm1(x))); h = conv2(SiLU(norm2(h))); return shortcut(x) + h, where shortcut is
// a 1x1 conv (nin_shortcut) when the channel count changes, else the identity.
class ResnetBlock {
 public:
  static ResnetBlock load(WeightSource& ws, const std::string& prefix, int in_ch, int out_ch);
  // x [B, in_ch, H, W] -> [B, out_ch, H, W]
  Tensor forward(const Tensor& x) const;

 private:
  VaeGroupNorm norm1_, norm2_;
  kernels::cpu::Conv2d conv1_, conv2_, nin_shortcut_;
};

// x + proj_out(attention(qkv(norm(x)))), one head over the H*W positions.
class AttnBlock {
 public:
  static AttnBlock load(WeightSource& ws, const std::string& prefix, int channels);
  // x [B, C, H, W] -> [B, C, H, W]
  Tensor forward(const Tensor& x) const;

 private:
  VaeGroupNorm norm_;
  kernels::cpu::Conv2d qkv_, proj_out_;
};

}  // namespace varcode::model
