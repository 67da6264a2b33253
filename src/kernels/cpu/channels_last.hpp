// Element-wise and normalisation kernels on channels-last (NHWC) activations, the layout the VQ-VAE
// keeps end to end: oneDNN's direct convolutions run on it without reorders (f32 and bf16), and
// every kernel here walks rows of C contiguous channels, which vectorise over C.
//
// Tensors are [B, H, W, C] (shape in that order), f32 or bf16 (stored as uint16). Where a kernel
// takes an input and an output, each may be f32 or bf16 independently; arithmetic is f32 and a
// bf16 output is rounded to nearest-even once at the store.
#pragma once
#include <cstdint>

#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// GroupNorm (PyTorch semantics: biased variance over each group's channels and positions, then a
// per-channel affine), optionally followed by SiLU in the same pass. Statistics in f64 whatever
// the dtypes. x [B, H, W, C] -> y [B, H, W, C]; gamma, beta [C] f32; y may alias x when the
// dtypes match.
void group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps, bool fuse_silu,
                     Tensor& y);

// Nearest 2x upsampling. x [B, H, W, C] -> y [B, 2H, 2W, C].
void upsample_nearest2x_nhwc(const Tensor& x, Tensor& y);

// Layout changes at the model boundary. x [B, C, H, W] f32 -> y [B, H, W, C] f32 or bf16.
void nchw_to_nhwc(const Tensor& x, Tensor& y);
// x [B, H, W, C] f32 -> y [B, C, H, W] f32, each value clamped to [lo, hi] when lo <= hi.
void nhwc_to_nchw(const Tensor& x, Tensor& y, float lo = 1.0f, float hi = -1.0f);

// dtype conversion of the same shape (f32 <-> bf16, or a copy).
void convert(const Tensor& x, Tensor& y);

}  // namespace varcode::kernels::cpu
