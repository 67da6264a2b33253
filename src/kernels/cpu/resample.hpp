// The multi-scale quantizer's resampling, bit-compatible with PyTorch's CPU kernels (spec §4.2).
#pragma once
#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// interpolate(mode='bicubic', align_corners=False): x [B, C, h, w] -> [B, C, out_h, out_w].
// src = (o + 0.5) * in/out - 0.5 (no clamping of src or t), taps i0-1 .. i0+2 clamped into the
// input, cubic convolution A = -0.75; the width taps are summed first, then the height taps.
Tensor bicubic_up(const Tensor& x, int out_h, int out_w);

// interpolate(mode='area') = adaptive average pooling: output i averages inputs
// [floor(i * in / out), ceil((i + 1) * in / out)). x [B, C, h, w] -> [B, C, out_h, out_w].
Tensor area_down(const Tensor& x, int out_h, int out_w);
// The same into a given output y [B, C, out_h, out_w].
void bicubic_up(const Tensor& x, Tensor& y);
void area_down(const Tensor& x, Tensor& y);

}  // namespace varcode::kernels::cpu
