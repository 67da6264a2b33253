// Bringing a user's picture to the VQ-VAE's square input: centre crop, then an exact box (area)
// filter when shrinking or bicubic (A = -0.75) when enlarging.
#pragma once
#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// x [C, H, W] -> the centred [C, S, S] crop, S = min(H, W) (odd excess: one more row/column is
// dropped at the bottom/right).
Tensor center_crop_square(const Tensor& x);

// Box filter with fractional coverage (each output pixel averages the input area it covers, as
// PIL's BOX / OpenCV's INTER_AREA do): alias-free shrinking by any ratio. x [C, H, W] -> [C, out_h, out_w].
Tensor resize_area(const Tensor& x, int out_h, int out_w);

// Centre crop to a square, then resize to side x side: resize_area when shrinking, bicubic_up
// (clamped to [lo, hi]) when enlarging, a copy when the size already fits. x [C, H, W] -> [C, side, side]
Tensor fit_square(const Tensor& x, int side, float lo, float hi);

}  // namespace varcode::kernels::cpu
