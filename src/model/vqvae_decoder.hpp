// The VQ-VAE decoder side: post_quant_conv + decoder (spec §4.3), f_hat -> image in [-1, 1].
#pragma once
#include <vector>

#include "model/config.hpp"
#include "model/vqvae_blocks.hpp"
#include "model/weights.hpp"

namespace varcode::model {

class VqvaeDecoder {
 public:
  // Takes `post_quant_conv.*` and `decoder.*` for the architecture `cfg` describes.
  static VqvaeDecoder load(WeightSource& ws, const VaeConfig& cfg);

  // fhat_to_img without the final mapping to [0, 1]: clamp(decoder(post_quant_conv(f_hat)), -1, 1).
  // f_hat [B, Cvae, P, P] -> [B, 3, P * downsample, P * downsample]
  Tensor forward(const Tensor& f_hat) const;

 private:
  struct Level {  // decoder.up.<level>
    std::vector<ResnetBlock> blocks;
    std::vector<AttnBlock> attns;        // one per block at the lowest resolution, else none
    kernels::cpu::Conv2d upsample_conv;  // absent at level 0
  };
  int z_channels_ = 0;
  kernels::cpu::Conv2d post_quant_conv_, conv_in_, conv_out_;
  ResnetBlock mid_block_1_, mid_block_2_;
  AttnBlock mid_attn_1_;
  std::vector<Level> levels_;  // index = level (0 = full resolution)
  VaeGroupNorm norm_out_;
};

}  // namespace varcode::model
