// The VQ-VAE's spatial self-attention core: one head over the H*W positions of a feature map.
#pragma once
#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// Channels-last maps: qkv [B, H, W, 3C] f32 (the block's qkv 1x1 conv: q, k, v channel blocks in
// that order) -> h [B, H, W, C] f32, written into `h`, with for each position j
//   w[j, i] = softmax_i( sum_c q[c, j] k[c, i] * C^-0.5 ),   h[c, j] = sum_i v[c, i] w[j, i].
// Both products run as oneDNN batched matmuls on strided views of qkv (no transposing copies).
void vae_spatial_attention_nhwc(const Tensor& qkv, Tensor& h);

}  // namespace varcode::kernels::cpu
