#include "model/vqvae_blocks.hpp"

#include "kernels/cpu/channels_last.hpp"
#include "kernels/cpu/vae_attention.hpp"

namespace varcode::model {

using kernels::cpu::Conv2d;
using kernels::cpu::Conv2dGeometry;

VaeGroupNorm VaeGroupNorm::load(WeightSource& ws, const std::string& prefix, int channels) {
  if (channels % kVaeNormGroups != 0)
    throw Error(ws.path() + ": '" + prefix + "' normalises " + std::to_string(channels) +
                " channels, not a multiple of the " + std::to_string(kVaeNormGroups) + " GroupNorm groups");
  return {ws.take(prefix + "weight", {channels}), ws.take(prefix + "bias", {channels})};
}

void VaeGroupNorm::forward_nhwc(const Tensor& x, bool fuse_silu, Tensor& y) const {
  kernels::cpu::group_norm_nhwc(x, gamma, beta, kVaeNormGroups, kVaeNormEps, fuse_silu, y);
}

Conv2d load_conv(WeightSource& ws, const std::string& prefix, int out_ch, int in_ch, int kernel,
                 Conv2dGeometry geometry) {
  return Conv2d(ws.take(prefix + "weight", {out_ch, in_ch, kernel, kernel}), ws.take(prefix + "bias", {out_ch}),
                geometry);
}

Conv2d load_conv(WeightSource& ws, const std::string& prefix, int out_ch, int in_ch, int kernel) {
  return load_conv(ws, prefix, out_ch, in_ch, kernel, Conv2dGeometry::same(kernel));
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
  out_shape[3] = conv1_.out_channels();
  Tensor t = run.pool.acquire(run.act, x.shape());  // [B, H, W, in]
  norm1_.forward_nhwc(x, /*fuse_silu=*/true, t);
  Tensor h = run.pool.acquire(run.act, out_shape);  // [B, H, W, out]
  conv1_.forward_nhwc(t, h, /*accumulate=*/false);
  run.pool.release(t);
  norm2_.forward_nhwc(h, /*fuse_silu=*/true, h);  // in place
  if (nin_shortcut_.defined()) {
    Tensor shortcut = run.pool.acquire(DType::f32, out_shape);  // [B, H, W, out]
    nin_shortcut_.forward_nhwc(x, shortcut, /*accumulate=*/false);
    run.pool.release(x);
    x = shortcut;
  }
  conv2_.forward_nhwc(h, x, /*accumulate=*/true);  // x = shortcut(x) + conv2(h), fused into the conv
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
  qkv_shape[3] = qkv_.out_channels();
  Tensor t = run.pool.acquire(run.act, x.shape());  // [B, H, W, C]
  norm_.forward_nhwc(x, /*fuse_silu=*/false, t);
  Tensor qkv = run.pool.acquire(DType::f32, qkv_shape);  // [B, H, W, 3C]
  qkv_.forward_nhwc(t, qkv, /*accumulate=*/false);
  run.pool.release(t);
  Tensor h = run.pool.acquire(DType::f32, x.shape());  // [B, H, W, C]
  kernels::cpu::vae_spatial_attention_nhwc(qkv, h);
  run.pool.release(qkv);
  proj_out_.forward_nhwc(h, x, /*accumulate=*/true);  // x = x + proj_out(h)
  run.pool.release(h);
  return x;
}

}  // namespace varcode::model
