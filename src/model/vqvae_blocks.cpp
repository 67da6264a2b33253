#include "model/vqvae_blocks.hpp"

#include "kernels/cpu/group_norm.hpp"
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

Tensor VaeGroupNorm::forward(const Tensor& x, bool fuse_silu) const {
  return kernels::cpu::group_norm(x, gamma, beta, kVaeNormGroups, kVaeNormEps, fuse_silu);  // [B, C, H, W]
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

Tensor ResnetBlock::forward(const Tensor& x) const {
  Tensor h = conv1_.forward(norm1_.forward(x, /*fuse_silu=*/true));             // [B, out, H, W]
  h = norm2_.forward(h, /*fuse_silu=*/true);                                    // [B, out, H, W]
  Tensor out = nin_shortcut_.defined() ? nin_shortcut_.forward(x) : x.clone();  // [B, out, H, W]
  conv2_.forward_accumulate(h, out);                                            // out = shortcut(x) + conv2(h)
  return out;
}

AttnBlock AttnBlock::load(WeightSource& ws, const std::string& prefix, int channels) {
  AttnBlock a;
  a.norm_ = VaeGroupNorm::load(ws, prefix + "norm.", channels);
  a.qkv_ = load_conv(ws, prefix + "qkv.", 3 * channels, channels, 1);
  a.proj_out_ = load_conv(ws, prefix + "proj_out.", channels, channels, 1);
  return a;
}

Tensor AttnBlock::forward(const Tensor& x) const {
  Tensor qkv = qkv_.forward(norm_.forward(x, /*fuse_silu=*/false));  // [B, 3C, H, W]
  Tensor h = kernels::cpu::vae_spatial_attention(qkv);               // [B, C, H, W]
  Tensor out = x.clone();                                            // [B, C, H, W]
  proj_out_.forward_accumulate(h, out);                              // out = x + proj_out(h)
  return out;
}

}  // namespace varcode::model
