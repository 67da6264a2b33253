#include "kernels/cpu/channels_last.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/op_checks.hpp"
#include "kernels/cpu/fast_math.hpp"

// The hot row loops are compiled for AVX-512, AVX2 and the baseline and picked at load time
// (VARCODE_SIMD_CLONES). The OpenMP loops stay in plain functions that call the cloned row workers,
// because an outlined parallel region does not inherit a clone's target.

namespace varcode::kernels::cpu {

namespace {

using bf16_t = uint16_t;

[[gnu::always_inline]] inline float load(const float* p, int64_t i) { return p[i]; }
[[gnu::always_inline]] inline float load(const bf16_t* p, int64_t i) {
  const uint32_t u = static_cast<uint32_t>(p[i]) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
[[gnu::always_inline]] inline void store(float* p, int64_t i, float v) { p[i] = v; }
// Round to nearest-even like f32_to_bf16 (NaN stays NaN). The NaN case is blended in with a bit
// mask rather than a select: GCC vectorised the select form ~4x slower (masked scalar stores).
[[gnu::always_inline]] inline void store(bf16_t* p, int64_t i, float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  const uint32_t is_nan = 0u - static_cast<uint32_t>((u & 0x7fffffffu) > 0x7f800000u);  // all ones for NaN
  p[i] = static_cast<bf16_t>((rounded & ~is_nan) | (nan & is_nan));
}

// SiLU as silu_inplace computes it: x / (1 + exp(-x)).
[[gnu::always_inline]] inline float silu_value(float x) { return x / (1.0f + exp_approx(-x)); }

using backend::is_f32_or_bf16;

// ---- row workers (cloned per ISA) -------------------------------------------------------------

template <class T>
[[gnu::always_inline]] inline void stats_rows_t(const T* x, int64_t rows, int64_t C, double* sum, double* sq) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const double v = load(row, c);
      sum[c] += v;
      sq[c] += v * v;
    }
  }
}

// Per-channel sum and sum of squares of `rows` rows of C channels, added onto sum[C], sq[C].
VARCODE_SIMD_CLONES void stats_rows(const void* x, bool bf16, int64_t rows, int64_t C, double* sum, double* sq) {
  if (bf16)
    stats_rows_t(static_cast<const bf16_t*>(x), rows, C, sum, sq);
  else
    stats_rows_t(static_cast<const float*>(x), rows, C, sum, sq);
}

template <class TI, class TO>
[[gnu::always_inline]] inline void convert_t(const TI* x, TO* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) store(y, i, load(x, i));
}

[[gnu::always_inline]] inline void affine_f32(const float* in, float* out, int64_t n, const float* scale,
                                              const float* shift, bool silu) {
  if (silu) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) out[c] = silu_value(in[c] * scale[c] + shift[c]);
  } else {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) out[c] = in[c] * scale[c] + shift[c];
  }
}

// bf16 rows go through f32 tiles on the stack: GCC vectorised the SiLU loop with bf16 loads or
// stores mixed in ~4x slower than the pure f32 loop plus a separate conversion.
template <class TI, class TO>
[[gnu::always_inline]] inline void affine_rows_t(const TI* x, TO* y, int64_t rows, int64_t C, const float* scale,
                                                 const float* shift, bool silu) {
  constexpr int64_t kTile = 512;
  alignas(64) float in_tile[kTile];
  alignas(64) float out_tile[kTile];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < C; c0 += kTile) {
      const int64_t n = std::min(kTile, C - c0);
      const float* in;
      if constexpr (std::is_same_v<TI, float>) {
        in = x + r * C + c0;
      } else {
        convert_t(x + r * C + c0, in_tile, n);
        in = in_tile;
      }
      if constexpr (std::is_same_v<TO, float>) {
        affine_f32(in, y + r * C + c0, n, scale + c0, shift + c0, silu);
      } else {
        affine_f32(in, out_tile, n, scale + c0, shift + c0, silu);
        convert_t(out_tile, y + r * C + c0, n);
      }
    }
}

// y = x * scale[c] + shift[c] (then SiLU) over `rows` rows of C channels.
VARCODE_SIMD_CLONES void affine_rows(const void* x, bool x_bf16, void* y, bool y_bf16, int64_t rows, int64_t C,
                                     const float* scale, const float* shift, bool silu) {
  if (!x_bf16 && !y_bf16)
    affine_rows_t(static_cast<const float*>(x), static_cast<float*>(y), rows, C, scale, shift, silu);
  else if (!x_bf16)
    affine_rows_t(static_cast<const float*>(x), static_cast<bf16_t*>(y), rows, C, scale, shift, silu);
  else if (!y_bf16)
    affine_rows_t(static_cast<const bf16_t*>(x), static_cast<float*>(y), rows, C, scale, shift, silu);
  else
    affine_rows_t(static_cast<const bf16_t*>(x), static_cast<bf16_t*>(y), rows, C, scale, shift, silu);
}

// n values from x to y, converting between f32 and bf16 (a plain copy when the dtypes match).
VARCODE_SIMD_CLONES void convert_n(const void* x, bool x_bf16, void* y, bool y_bf16, int64_t n) {
  if (x_bf16 == y_bf16)
    std::memcpy(y, x, static_cast<size_t>(n) * (x_bf16 ? 2 : 4));
  else if (x_bf16)
    convert_t(static_cast<const bf16_t*>(x), static_cast<float*>(y), n);
  else
    convert_t(static_cast<const float*>(x), static_cast<bf16_t*>(y), n);
}

}  // namespace

void group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps, bool fuse_silu,
                     Tensor& y) {
  backend::check_group_norm_nhwc(x, gamma, beta, groups, y);
  const int64_t B = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3);
  if (x.numel() == 0) return;

  const bool xb = x.dtype() == DType::bf16, yb = y.dtype() == DType::bf16;
  const size_t esx = dtype_size(x.dtype()), esy = dtype_size(y.dtype());
  const auto* xp = static_cast<const char*>(x.raw());
  auto* yp = static_cast<char*>(y.raw());

  // Statistics: each image's rows split into a fixed number of chunks (independent of the thread
  // count), per-chunk per-channel partial sums, then reduced in a fixed order: the result does not
  // depend on the scheduling. Single pass (sum, sum of squares) in f64, which loses nothing a
  // float result could show for activations whose mean is not 1e7 times their spread.
  const int64_t K = std::min<int64_t>(64, HW);
  const int64_t rows_per_chunk = (HW + K - 1) / K;
  std::vector<double> part(static_cast<size_t>(B * K * C * 2), 0.0);  // [B, K, 2, C]
#pragma omp parallel for schedule(static)
  for (int64_t bk = 0; bk < B * K; ++bk) {
    const int64_t b = bk / K, k = bk % K;
    const int64_t r0 = std::min(HW, k * rows_per_chunk), r1 = std::min(HW, r0 + rows_per_chunk);
    double* s = part.data() + bk * 2 * C;
    stats_rows(xp + static_cast<size_t>((b * HW + r0) * C) * esx, xb, r1 - r0, C, s, s + C);
  }

  const int64_t cpg = C / groups;
  const double n = static_cast<double>(cpg * HW);
  std::vector<float> scale(static_cast<size_t>(B * C)), shift(static_cast<size_t>(B * C));  // [B, C]
  const float* g = gamma.data<float>();
  const float* bt = beta.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t grp = 0; grp < groups; ++grp) {
      double sum = 0.0, sq = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double* s = part.data() + (b * K + k) * 2 * C;
        for (int64_t c = grp * cpg; c < (grp + 1) * cpg; ++c) {
          sum += s[c];
          sq += s[C + c];
        }
      }
      const double mean = sum / n;
      const double var = std::max(0.0, sq / n - mean * mean);
      const float m = static_cast<float>(mean);
      const float rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
      for (int64_t c = grp * cpg; c < (grp + 1) * cpg; ++c) {
        // PyTorch folds the statistics into one scale and shift per channel.
        scale[static_cast<size_t>(b * C + c)] = rstd * g[c];
        shift[static_cast<size_t>(b * C + c)] = bt[c] - scale[static_cast<size_t>(b * C + c)] * m;
      }
    }

  // Normalise (+ SiLU) in chunks of rows; an aliasing y is safe: each element is read, then written.
  constexpr int64_t kRows = 64;
  const int64_t chunks = (HW + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (int64_t bc = 0; bc < B * chunks; ++bc) {
    const int64_t b = bc / chunks, r0 = (bc % chunks) * kRows, r1 = std::min(HW, r0 + kRows);
    const size_t at = static_cast<size_t>((b * HW + r0) * C);
    affine_rows(xp + at * esx, xb, yp + at * esy, yb, r1 - r0, C, scale.data() + b * C, shift.data() + b * C,
                fuse_silu);
  }
}

void upsample_nearest2x_nhwc(const Tensor& x, Tensor& y) {
  if (!is_f32_or_bf16(x) || x.ndim() != 4)
    throw Error("upsample_nearest2x_nhwc: input must be f32 or bf16 [B, H, W, C], got " + shape_str(x.shape()));
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const Shape want{B, 2 * H, 2 * W, C};
  if (!is_f32_or_bf16(y) || y.shape() != want)
    throw Error("upsample_nearest2x_nhwc: output must be " + shape_str(want) + ", got " + shape_str(y.shape()));
  if (x.raw() == y.raw() && x.numel() > 0) throw Error("upsample_nearest2x_nhwc: output must not alias the input");
  const bool xb = x.dtype() == DType::bf16, yb = y.dtype() == DType::bf16;
  const size_t esx = dtype_size(x.dtype()), esy = dtype_size(y.dtype());
  const auto* xp = static_cast<const char*>(x.raw());
  auto* yp = static_cast<char*>(y.raw());
  // One output row pair per iteration: the first row is built from the input row (converted
  // once per value), the second is a copy of it.
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const char* src = xp + static_cast<size_t>(bh * W * C) * esx;
    char* dst0 = yp + static_cast<size_t>(bh * 4 * W * C) * esy;  // output row 2h of image b
    char* dst1 = dst0 + static_cast<size_t>(2 * W * C) * esy;     // output row 2h + 1
    for (int64_t w = 0; w < W; ++w) {
      char* d = dst0 + static_cast<size_t>(2 * w * C) * esy;
      convert_n(src + static_cast<size_t>(w * C) * esx, xb, d, yb, C);
      std::memcpy(d + static_cast<size_t>(C) * esy, d, static_cast<size_t>(C) * esy);
    }
    std::memcpy(dst1, dst0, static_cast<size_t>(2 * W * C) * esy);
  }
}

void nchw_to_nhwc(const Tensor& x, Tensor& y) {
  if (x.dtype() != DType::f32 || x.ndim() != 4)
    throw Error("nchw_to_nhwc: input must be f32 [B, C, H, W], got " + shape_str(x.shape()));
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  if (!is_f32_or_bf16(y) || y.shape() != Shape{B, H, W, C})
    throw Error("nchw_to_nhwc: output must be " + shape_str({B, H, W, C}) + ", got " + shape_str(y.shape()));
  const float* xp = x.data<float>();
  const bool yb = y.dtype() == DType::bf16;
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    for (int64_t w = 0; w < W; ++w)
      for (int64_t c = 0; c < C; ++c) {
        const float v = xp[((b * C + c) * H + h) * W + w];
        const int64_t at = (bh * W + w) * C + c;
        if (yb)
          store(y.data<bf16_t>(), at, v);
        else
          y.data<float>()[at] = v;
      }
  }
}

void nhwc_to_nchw(const Tensor& x, Tensor& y, float lo, float hi) {
  if (x.dtype() != DType::f32 || x.ndim() != 4)
    throw Error("nhwc_to_nchw: input must be f32 [B, H, W, C], got " + shape_str(x.shape()));
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  if (y.dtype() != DType::f32 || y.shape() != Shape{B, C, H, W})
    throw Error("nhwc_to_nchw: output must be f32 " + shape_str({B, C, H, W}) + ", got " + shape_str(y.shape()));
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const bool clamp = lo <= hi;
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    for (int64_t c = 0; c < C; ++c) {
      float* out = yp + ((b * C + c) * H + h) * W;
      const float* in = xp + bh * W * C + c;
      for (int64_t w = 0; w < W; ++w) out[w] = clamp ? std::clamp(in[w * C], lo, hi) : in[w * C];
    }
  }
}

void convert(const Tensor& x, Tensor& y) {
  if (!is_f32_or_bf16(x) || !is_f32_or_bf16(y) || x.shape() != y.shape())
    throw Error("convert: f32 / bf16 tensors of one shape expected, got " + shape_str(x.shape()) + " and " +
                shape_str(y.shape()));
  const bool xb = x.dtype() == DType::bf16, yb = y.dtype() == DType::bf16;
  const size_t esx = dtype_size(x.dtype()), esy = dtype_size(y.dtype());
  const int64_t n = x.numel();
  constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for schedule(static)
  for (int64_t begin = 0; begin < n; begin += kChunk)
    convert_n(static_cast<const char*>(x.raw()) + static_cast<size_t>(begin) * esx, xb,
              static_cast<char*>(y.raw()) + static_cast<size_t>(begin) * esy, yb, std::min(kChunk, n - begin));
}

}  // namespace varcode::kernels::cpu
