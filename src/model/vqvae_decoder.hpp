// The VQ-VAE decoder side: post_quant_conv + decoder (spec §4.3), f_hat -> image in [-1, 1].
#pragma once
#include <memory>
#include <vector>

#include "model/config.hpp"
#include "model/vqvae_blocks.hpp"
#include "model/weights.hpp"

namespace varcode::model {

class VqvaeDecoder {
 public:
  // Takes `post_quant_conv.*` and `decoder.*` for the architecture `cfg` describes. `compute` is
  // f32 (exact, matches the reference to ~1e-5) or bf16 (convolutions on bf16 activations and
  // weights with f32 accumulation, f32 residual stream and GroupNorm statistics).
  static VqvaeDecoder load(WeightSource& ws, const VaeConfig& cfg, DType compute = DType::f32);

  // fhat_to_img without the final mapping to [0, 1]: clamp(decoder(post_quant_conv(f_hat)), -1, 1).
  // f_hat [B, Cvae, P, P] -> [B, 3, P * downsample, P * downsample], both on the device
  Tensor forward(const Tensor& f_hat) const;
  DType compute_dtype() const { return compute_; }

 private:
  struct Level {  // decoder.up.<level>
    std::vector<ResnetBlock> blocks;
    std::vector<AttnBlock> attns;  // one per block at the lowest resolution, else none
    ConvPtr upsample_conv;         // absent at level 0
  };
  std::shared_ptr<const backend::Backend> be_;
  int z_channels_ = 0;
  DType compute_ = DType::f32;
  std::shared_ptr<BufferPools> pools_;  // shared by copies
  ConvPtr post_quant_conv_, conv_in_, conv_out_;
  ResnetBlock mid_block_1_, mid_block_2_;
  AttnBlock mid_attn_1_;
  std::vector<Level> levels_;  // index = level (0 = full resolution)
  VaeGroupNorm norm_out_;
};

}  // namespace varcode::model
