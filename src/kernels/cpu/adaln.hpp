// Layer norm (no affine, eps 1e-6) fused with AdaLN modulation: out = LN(x) * (1 + scale) + shift.
#pragma once
#include <cstdint>

namespace varcode::kernels::cpu {

// x, out: [R, l, C]; scale, shift: row r at `scale + r * mod_stride` ([R, C] views into a wider
// per-row modulation vector). out may alias x.
void adaln_modulate(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale, const float* shift,
                    int64_t mod_stride, float* out);

// x += gamma * y, gamma per row: x, y [R, l, C], gamma row r at `gamma + r * mod_stride`.
void gated_residual_add(float* x, const float* y, int64_t rows, int64_t l, int64_t c, const float* gamma,
                        int64_t mod_stride);

}  // namespace varcode::kernels::cpu
