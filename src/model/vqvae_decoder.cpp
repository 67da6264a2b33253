#include "model/vqvae_decoder.hpp"

#include <algorithm>

#include "kernels/cpu/upsample_nearest.hpp"

namespace varcode::model {

VqvaeDecoder VqvaeDecoder::load(WeightSource& ws, const VaeConfig& cfg) {
  VqvaeDecoder d;
  const int n_levels = static_cast<int>(cfg.ch_mult.size());
  const int cvae = cfg.z_channels;
  d.z_channels_ = cvae;
  d.post_quant_conv_ = load_conv(ws, "post_quant_conv.", cvae, cvae, 3);
  int block_in = cfg.ch * cfg.ch_mult.back();
  d.conv_in_ = load_conv(ws, "decoder.conv_in.", block_in, cvae, 3);
  d.mid_block_1_ = ResnetBlock::load(ws, "decoder.mid.block_1.", block_in, block_in);
  d.mid_attn_1_ = AttnBlock::load(ws, "decoder.mid.attn_1.", block_in);
  d.mid_block_2_ = ResnetBlock::load(ws, "decoder.mid.block_2.", block_in, block_in);
  d.levels_.resize(static_cast<size_t>(n_levels));
  for (int level = n_levels - 1; level >= 0; --level) {
    Level& lv = d.levels_[static_cast<size_t>(level)];
    const std::string prefix = "decoder.up." + std::to_string(level) + ".";
    const int block_out = cfg.ch * cfg.ch_mult[static_cast<size_t>(level)];
    // The decoder has one more ResnetBlock per level than the encoder.
    for (int j = 0; j < cfg.num_res_blocks + 1; ++j) {
      lv.blocks.push_back(ResnetBlock::load(ws, prefix + "block." + std::to_string(j) + ".", block_in, block_out));
      block_in = block_out;
      if (level == n_levels - 1)
        lv.attns.push_back(AttnBlock::load(ws, prefix + "attn." + std::to_string(j) + ".", block_in));
    }
    if (level != 0) lv.upsample_conv = load_conv(ws, prefix + "upsample.conv.", block_in, block_in, 3);
  }
  d.norm_out_ = VaeGroupNorm::load(ws, "decoder.norm_out.", block_in);
  d.conv_out_ = load_conv(ws, "decoder.conv_out.", cfg.in_channels, block_in, 3);
  return d;
}

Tensor VqvaeDecoder::forward(const Tensor& f_hat) const {
  if (f_hat.dtype() != DType::f32 || f_hat.ndim() != 4 || f_hat.dim(1) != z_channels_ || f_hat.dim(2) <= 0 ||
      f_hat.dim(3) <= 0)
    throw Error("VQ-VAE decoder: f_hat must be f32 [B, " + std::to_string(z_channels_) + ", P, P], got " +
                shape_str(f_hat.shape()));
  Tensor h = conv_in_.forward(post_quant_conv_.forward(f_hat));  // [B, C_top, P, P]
  h = mid_block_2_.forward(mid_attn_1_.forward(mid_block_1_.forward(h)));
  for (int level = static_cast<int>(levels_.size()) - 1; level >= 0; --level) {
    const Level& lv = levels_[static_cast<size_t>(level)];
    for (size_t j = 0; j < lv.blocks.size(); ++j) {
      h = lv.blocks[j].forward(h);  // [B, C_level, R, R]
      if (!lv.attns.empty()) h = lv.attns[j].forward(h);
    }
    if (level != 0) h = lv.upsample_conv.forward(kernels::cpu::upsample_nearest2x(h));  // [B, C_level, 2R, 2R]
  }
  Tensor img = conv_out_.forward(norm_out_.forward(h, /*fuse_silu=*/true));  // [B, 3, H, W]
  float* p = img.data<float>();
  const int64_t n = img.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) p[i] = std::clamp(p[i], -1.0f, 1.0f);
  return img;
}

}  // namespace varcode::model
