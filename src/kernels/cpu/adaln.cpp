#include "kernels/cpu/adaln.hpp"

#include "kernels/cpu/fast_math.hpp"

#include <cmath>

namespace varcode::kernels::cpu {

namespace {
constexpr double kLnEps = 1e-6;

VARCODE_SIMD_CLONES void modulate_row(const float* x, int64_t c, const float* scale, const float* shift, float* out) {
  // Two passes in double: the statistics must not drift from PyTorch's over C up to 1920.
  double sum = 0;
  for (int64_t i = 0; i < c; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(c);
  double sq = 0;
  for (int64_t i = 0; i < c; ++i) {
    const double d = x[i] - mean;
    sq += d * d;
  }
  const float rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(c) + kLnEps));
  const float fmean = static_cast<float>(mean);
#pragma omp simd
  for (int64_t i = 0; i < c; ++i) out[i] = (x[i] - fmean) * rstd * (1.0f + scale[i]) + shift[i];
}
}  // namespace

void adaln_modulate(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale, const float* shift,
                    int64_t mod_stride, float* out) {
#pragma omp parallel for collapse(2) if (rows * l > 4)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < l; ++t) {
      const int64_t off = (r * l + t) * c;
      modulate_row(x + off, c, scale + r * mod_stride, shift + r * mod_stride, out + off);
    }
}


namespace {
VARCODE_SIMD_CLONES void gated_row(float* x, const float* y, const float* g, int64_t c) {
#pragma omp simd
  for (int64_t i = 0; i < c; ++i) x[i] += g[i] * y[i];
}
}  // namespace

void gated_residual_add(float* x, const float* y, int64_t rows, int64_t l, int64_t c, const float* gamma,
                        int64_t mod_stride) {
#pragma omp parallel for collapse(2) if (rows * l > 4)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < l; ++t) {
      gated_row(x + (r * l + t) * c, y + (r * l + t) * c, gamma + r * mod_stride, c);
    }
}

}  // namespace varcode::kernels::cpu
