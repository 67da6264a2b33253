// Test-only: the NCHW form of the channels-last upsample (channels_last.hpp).
// Nearest-neighbour 2x upsampling (PyTorch interpolate(scale_factor=2, mode='nearest')).
#pragma once
#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// x [B, C, H, W] -> [B, C, 2H, 2W]
Tensor upsample_nearest2x(const Tensor& x);

}  // namespace varcode::kernels::cpu
