// Device helpers shared by the VQ-VAE's kernels (vae_ops.cu, vae_conv.cu): f32 / bf16 element
// access with the CPU backend's rounding (bf16 stores round to nearest even, NaN stays NaN), and
// launch sizes for grid-stride loops.
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "backend/op_checks.hpp"
#include "varcode/tensor.hpp"

namespace varcode::kernels::cuda::vae {

// bf16 tensors hold uint16_t; the kernels see them as __nv_bfloat16.
using bf16 = __nv_bfloat16;

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const bf16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(bf16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// Blocks of 256 for a grid-stride loop over n elements: enough to fill any GPU, few enough that
// the grid stays far below the x-dimension's limit.
constexpr int kThreads = 256;
inline unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, int64_t{1} << 16));
}

using backend::is_f32_or_bf16;

// Every tensor an operation touches must be on the backend's GPU (a host tensor here is a bug of
// the caller that would otherwise read as an illegal address inside a kernel).
inline void check_on(const Tensor& t, Device device, const char* op, const char* what) {
  if (t.device() != device)
    throw Error(std::string(op) + ": " + what + " is on " + device_name(t.device()) + ", expected " +
                device_name(device));
}

}  // namespace varcode::kernels::cuda::vae
