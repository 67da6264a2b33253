#include "model/vqvae_blocks.hpp"

namespace varcode::model {

VaeGroupNorm VaeGroupNorm::load(WeightSource& ws, const std::string& prefix, int channels) {
  if (channels % kVaeNormGroups != 0)
    throw Error(ws.path() + ": '" + prefix + "' normalises " + std::to_string(channels) +
                " channels, not a multiple of the " + std::to_string(kVaeNormGroups) + " GroupNorm groups");
  return {ws.constant(prefix + "weight", {channels}), ws.constant(prefix + "bias", {channels})};
}

void VaeGroupNorm::forward_nhwc(const VaeRun& run, const Tensor& x, bool fuse_silu, Tensor& y) const {
  run.be.group_norm_nhwc(x, gamma, beta, kVaeNormGroups, kVaeNormEps, fuse_silu, y);
}

ConvPtr load_conv(WeightSource& ws, const std::string& prefix, int out_ch, int in_ch, int kernel) {
  return ws.conv(prefix, out_ch, in_ch, kernel, backend::ConvGeometry::same(kernel));
}

ResnetBlock ResnetBlock::load(WeightSource& ws, const std::string& prefix, int in_ch, int out_ch) {
  ResnetBlock b;
  b.norm1_ = VaeGroupNorm::load(ws, prefix + "norm1.", in_ch);
  b.conv1_ = load_conv(ws, prefix + "conv1.", out_ch, in_ch, 3);
  b.norm2_ = VaeGroupNorm::load(ws, prefix + "norm2.", out_ch);
  b.conv2_ = load_conv(ws, prefix + "conv2.", out_ch, out_ch, 3);
  if (in_ch != out_ch) b.nin_shortcut_ = load_conv(ws, prefix + "nin_shortcut.", out_ch, in_ch, 1);
  return b;
}

Tensor ResnetBlock::forward(Tensor x, const VaeRun& run) const {
  Shape out_shape = x.shape();
  out_shape[3] = conv1_->out_channels;
  Tensor t = run.pool.acquire(run.act, x.shape());  // [B, H, W, in]
  norm1_.forward_nhwc(run, x, /*fuse_silu=*/true, t);
  Tensor h = run.pool.acquire(run.act, out_shape);  // [B, H, W, out]
  run.be.conv2d_nhwc(*conv1_, t, h, /*accumulate=*/false);
  run.pool.release(t);
  norm2_.forward_nhwc(run, h, /*fuse_silu=*/true, h);  // in place
  if (nin_shortcut_) {
    Tensor shortcut = run.pool.acquire(DType::f32, out_shape);  // [B, H, W, out]
    run.be.conv2d_nhwc(*nin_shortcut_, x, shortcut, /*accumulate=*/false);
    run.pool.release(x);
    x = shortcut;
  }
  run.be.conv2d_nhwc(*conv2_, h, x, /*accumulate=*/true);  // x = shortcut(x) + conv2(h), fused into the conv
  run.pool.release(h);
  return x;
}

AttnBlock AttnBlock::load(WeightSource& ws, const std::string& prefix, int channels) {
  AttnBlock a;
  a.norm_ = VaeGroupNorm::load(ws, prefix + "norm.", channels);
  a.qkv_ = load_conv(ws, prefix + "qkv.", 3 * channels, channels, 1);
  a.proj_out_ = load_conv(ws, prefix + "proj_out.", channels, channels, 1);
  return a;
}

Tensor AttnBlock::forward(Tensor x, const VaeRun& run) const {
  Shape qkv_shape = x.shape();
  qkv_shape[3] = qkv_->out_channels;
  Tensor t = run.pool.acquire(run.act, x.shape());  // [B, H, W, C]
  norm_.forward_nhwc(run, x, /*fuse_silu=*/false, t);
  Tensor qkv = run.pool.acquire(DType::f32, qkv_shape);  // [B, H, W, 3C]
  run.be.conv2d_nhwc(*qkv_, t, qkv, /*accumulate=*/false);
  run.pool.release(t);
  Tensor h = run.pool.acquire(DType::f32, x.shape());  // [B, H, W, C]
  run.be.vae_attention_nhwc(qkv, h);
  run.pool.release(qkv);
  run.be.conv2d_nhwc(*proj_out_, h, x, /*accumulate=*/true);  // x = x + proj_out(h)
  run.pool.release(h);
  return x;
}

}  // namespace varcode::model
