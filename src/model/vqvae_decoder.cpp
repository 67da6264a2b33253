#include "model/vqvae_decoder.hpp"

#include <algorithm>

namespace varcode::model {

VqvaeDecoder VqvaeDecoder::load(WeightSource& ws, const VaeConfig& cfg, DType compute) {
  if (compute != DType::f32 && compute != DType::bf16)
    throw Error(std::string("VQ-VAE decoder: compute dtype must be f32 or bf16, got ") + dtype_name(compute));
  VqvaeDecoder d;
  d.be_ = ws.backend_ptr();
  d.pools_ = std::make_shared<BufferPools>(d.be_);
  // A backend without bf16 activations decodes in f32.
  d.compute_ = d.be_->bf16_activations() ? compute : DType::f32;
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
  const int64_t B = f_hat.dim(0), P = f_hat.dim(2), Q = f_hat.dim(3);
  BufferPools::Lease lease = pools_->lease();
  const backend::Backend& be = *be_;
  const VaeRun run{be, lease.pool(), compute_};
  BufferPool& pool = run.pool;

  // The small 16 x 16 head stays f32 in both modes: a few MFLOP, and it sets the whole residual.
  Tensor z = pool.acquire(DType::f32, {B, P, Q, z_channels_});  // [B, P, P, Cvae]
  be.nchw_to_nhwc(f_hat, z);
  Tensor zq = pool.acquire(DType::f32, {B, P, Q, z_channels_});  // [B, P, P, Cvae]
  be.conv2d_nhwc(*post_quant_conv_, z, zq, false);
  pool.release(z);
  Tensor h = pool.acquire(DType::f32, {B, P, Q, conv_in_->out_channels});  // [B, P, P, C_top]
  be.conv2d_nhwc(*conv_in_, zq, h, false);
  pool.release(zq);

  h = mid_block_2_.forward(mid_attn_1_.forward(mid_block_1_.forward(h, run), run), run);
  for (int level = static_cast<int>(levels_.size()) - 1; level >= 0; --level) {
    const Level& lv = levels_[static_cast<size_t>(level)];
    for (size_t j = 0; j < lv.blocks.size(); ++j) {
      h = lv.blocks[j].forward(h, run);  // [B, R, R, C_level]
      if (!lv.attns.empty()) h = lv.attns[j].forward(h, run);
    }
    if (level != 0) {
      Shape up_shape{B, 2 * h.dim(1), 2 * h.dim(2), h.dim(3)};
      Tensor u = pool.acquire(run.act, up_shape);  // [B, 2R, 2R, C_level]
      be.upsample_nearest2x_nhwc(h, u);
      pool.release(h);
      h = pool.acquire(DType::f32, up_shape);  // [B, 2R, 2R, C_level]
      be.conv2d_nhwc(*lv.upsample_conv, u, h, false);
      pool.release(u);
    }
  }
  Tensor t = pool.acquire(run.act, h.shape());  // [B, H, W, ch]
  norm_out_.forward_nhwc(run, h, /*fuse_silu=*/true, t);
  pool.release(h);
  Tensor out = pool.acquire(DType::f32, {B, t.dim(1), t.dim(2), conv_out_->out_channels});  // [B, H, W, 3]
  be.conv2d_nhwc(*conv_out_, t, out, false);
  pool.release(t);
  // The image leaves in a fresh NCHW buffer (the caller keeps it), clamped on the way.
  Tensor img = be.alloc(DType::f32, {B, out.dim(3), out.dim(1), out.dim(2)});  // [B, 3, H, W]
  be.nhwc_to_nchw(out, img, -1.0f, 1.0f);
  pool.release(out);
  return img;
}

}  // namespace varcode::model
