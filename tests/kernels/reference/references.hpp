// Naive references of the CPU kernels, for the tests only: plain loops (double accumulation where
// it matters) that state what a kernel computes, and the NCHW forms of the VQ-VAE's channels-last
// kernels that the engine no longer runs.
#pragma once
#include <cstdint>

#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/gemm.hpp"
#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

// y = x W^T + b (+ GELU-tanh).  x [M, K], w [N, K], b [N] or null, y [M, N].
void linear_reference(const float* x, int64_t m, const float* w, const float* b, int64_t n, int64_t k, float* y,
                      Epilogue epilogue);

// out[r, t] = LN(x[r, t]) * (1 + scale[r]) + shift[r] (eps 1e-6), x [R, l, C].
void adaln_modulate_reference(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale,
                              const float* shift, int64_t mod_stride, float* out);

// l2norm_attention over an f32 cache, materialising the scores per query.
void l2norm_attention_reference(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                                KvView cache, float* out);

// The VQ-VAE's single-head spatial attention, NCHW: qkv [B, 3C, H, W] -> [B, C, H, W].
Tensor vae_attention_reference(const Tensor& qkv);

}  // namespace varcode::kernels::cpu
