// The VQ-VAE encoder side: encoder + quant_conv (spec §4.4), image in [-1, 1] -> latent f.
#pragma once
#include <memory>
#include <vector>

#include "model/config.hpp"
#include "model/vqvae_blocks.hpp"
#include "model/weights.hpp"

namespace varcode::model {

class VqvaeEncoder {
 public:
  // Takes `encoder.*` and `quant_conv.*` for the architecture `cfg` describes.
  static VqvaeEncoder load(WeightSource& ws, const VaeConfig& cfg);

  // quant_conv(encoder(img)): img [B, 3, H, W] in [-1, 1], H and W multiples of downsample()
  // -> f [B, Cvae, H / downsample, W / downsample]
  Tensor forward(const Tensor& img) const;
  int downsample() const { return 1 << (static_cast<int>(levels_.size()) - 1); }

 private:
  struct Level {  // encoder.down.<level>
    std::vector<ResnetBlock> blocks;
    std::vector<AttnBlock> attns;  // one per block at the lowest resolution, else none
    ConvPtr downsample_conv;       // absent at the last level
  };
  std::shared_ptr<const backend::Backend> be_;
  int in_channels_ = 3;
  std::shared_ptr<BufferPools> pools_;  // shared by copies
  ConvPtr conv_in_, conv_out_, quant_conv_;
  std::vector<Level> levels_;
  ResnetBlock mid_block_1_, mid_block_2_;
  AttnBlock mid_attn_1_;
  VaeGroupNorm norm_out_;
};

}  // namespace varcode::model
