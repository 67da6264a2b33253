#include "model/vqvae_encoder.hpp"

namespace varcode::model {

VqvaeEncoder VqvaeEncoder::load(WeightSource& ws, const VaeConfig& cfg) {
  VqvaeEncoder e;
  e.be_ = ws.backend_ptr();
  e.pools_ = std::make_shared<BufferPools>(e.be_);
  const int n_levels = static_cast<int>(cfg.ch_mult.size());
  e.in_channels_ = cfg.in_channels;
  e.conv_in_ = load_conv(ws, "encoder.conv_in.", cfg.ch, cfg.in_channels, 3);
  int block_in = cfg.ch;
  e.levels_.resize(static_cast<size_t>(n_levels));
  for (int level = 0; level < n_levels; ++level) {
    Level& lv = e.levels_[static_cast<size_t>(level)];
    const std::string prefix = "encoder.down." + std::to_string(level) + ".";
    const int block_out = cfg.ch * cfg.ch_mult[static_cast<size_t>(level)];
    for (int j = 0; j < cfg.num_res_blocks; ++j) {
      lv.blocks.push_back(ResnetBlock::load(ws, prefix + "block." + std::to_string(j) + ".", block_in, block_out));
      block_in = block_out;
      if (level == n_levels - 1)
        lv.attns.push_back(AttnBlock::load(ws, prefix + "attn." + std::to_string(j) + ".", block_in));
    }
    // Downsample2x: pad right and bottom by one zero, then a 3x3 stride-2 conv without padding.
    if (level != n_levels - 1)
      lv.downsample_conv = ws.conv(prefix + "downsample.conv.", block_in, block_in, 3, {2, 0, 0, 1, 1});
  }
  e.mid_block_1_ = ResnetBlock::load(ws, "encoder.mid.block_1.", block_in, block_in);
  e.mid_attn_1_ = AttnBlock::load(ws, "encoder.mid.attn_1.", block_in);
  e.mid_block_2_ = ResnetBlock::load(ws, "encoder.mid.block_2.", block_in, block_in);
  e.norm_out_ = VaeGroupNorm::load(ws, "encoder.norm_out.", block_in);
  e.conv_out_ = load_conv(ws, "encoder.conv_out.", cfg.z_channels, block_in, 3);
  e.quant_conv_ = load_conv(ws, "quant_conv.", cfg.z_channels, cfg.z_channels, 3);
  return e;
}

Tensor VqvaeEncoder::forward(const Tensor& img) const {
  const int ds = downsample();
  if (img.dtype() != DType::f32 || img.ndim() != 4 || img.dim(1) != in_channels_ || img.dim(2) <= 0 ||
      img.dim(3) <= 0 || img.dim(2) % ds != 0 || img.dim(3) % ds != 0)
    throw Error("VQ-VAE encoder: image must be f32 [B, " + std::to_string(in_channels_) +
                ", H, W] with H and W positive multiples of " + std::to_string(ds) + ", got " + shape_str(img.shape()));
  // The same channels-last f32 blocks as the decoder (encoding is not on the generation path, so
  // it stays f32).
  const int64_t B = img.dim(0), H = img.dim(2), W = img.dim(3);
  BufferPools::Lease lease = pools_->lease();
  const backend::Backend& be = *be_;
  const VaeRun run{be, lease.pool(), DType::f32};
  BufferPool& pool = run.pool;
  Tensor x = pool.acquire(DType::f32, {B, H, W, in_channels_});  // [B, H, W, 3]
  be.nchw_to_nhwc(img, x);
  Tensor h = pool.acquire(DType::f32, {B, H, W, conv_in_->out_channels});  // [B, H, W, ch]
  be.conv2d_nhwc(*conv_in_, x, h, false);
  pool.release(x);
  for (size_t level = 0; level < levels_.size(); ++level) {
    const Level& lv = levels_[level];
    for (size_t j = 0; j < lv.blocks.size(); ++j) {
      h = lv.blocks[j].forward(h, run);  // [B, R, R, C_level]
      if (!lv.attns.empty()) h = lv.attns[j].forward(h, run);
    }
    if (lv.downsample_conv) {
      const int r = static_cast<int>(h.dim(1)), c = static_cast<int>(h.dim(2));
      Tensor d = pool.acquire(DType::f32, {B, lv.downsample_conv->out_h(r), lv.downsample_conv->out_w(c), h.dim(3)});
      be.conv2d_nhwc(*lv.downsample_conv, h, d, false);  // [B, R/2, R/2, C_level]
      pool.release(h);
      h = d;
    }
  }
  h = mid_block_2_.forward(mid_attn_1_.forward(mid_block_1_.forward(h, run), run), run);  // [B, P, P, C_top]
  Tensor t = pool.acquire(DType::f32, h.shape());                                         // [B, P, P, C_top]
  norm_out_.forward_nhwc(run, h, /*fuse_silu=*/true, t);
  pool.release(h);
  Tensor f = pool.acquire(DType::f32, {B, t.dim(1), t.dim(2), conv_out_->out_channels});  // [B, P, P, Cvae]
  be.conv2d_nhwc(*conv_out_, t, f, false);
  pool.release(t);
  Tensor q = pool.acquire(DType::f32, f.shape());  // [B, P, P, Cvae]
  be.conv2d_nhwc(*quant_conv_, f, q, false);
  pool.release(f);
  Tensor out = be.alloc(DType::f32, {B, q.dim(3), q.dim(1), q.dim(2)});  // [B, Cvae, P, P]
  be.nhwc_to_nchw(q, out);
  pool.release(q);
  return out;
}

}  // namespace varcode::model
