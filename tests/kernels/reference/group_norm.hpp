// Test-only: the NCHW GroupNorm that the channels-last kernel (channels_last.hpp) replaced in the engine.
// GroupNorm (PyTorch semantics: biased variance over each group's channels and positions, then a
// per-channel affine), optionally followed by SiLU in the same pass.
#pragma once
#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// x [B, C, H, W] -> y [B, C, H, W]; gamma, beta [C]; C divisible by `groups`. y may alias x.
void group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps, bool fuse_silu,
                Tensor& y);
Tensor group_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps, bool fuse_silu);

}  // namespace varcode::kernels::cpu
