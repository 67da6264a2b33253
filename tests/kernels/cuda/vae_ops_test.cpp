// The CUDA backend's VQ-VAE operations (src/kernels/cuda/vae_conv.cu, vae_ops.cu) against the CPU
// backend on the same inputs: convolutions (NCHW and channels-last, f32 and bf16 activations,
// accumulate, the encoder's strided downsample, chunked batches), GroupNorm (+ SiLU), nearest 2x
// upsampling, the mid block's attention and the layout changes.
//
// Tolerances are derived from the arithmetic (no GPU measurement exists yet); each states how.
// u = 2^-23 is used for f32 sums: twice f32's unit roundoff, because tensor cores may truncate
// instead of rounding when they accumulate. The standard bound for a sum of n terms computed in
// any order is |fl(sum) - sum| <= n u sum|terms| (Higham, gamma_n), so two backends differ by at
// most twice that.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_test_util.hpp"
#include "kernels/kernel_test_util.hpp"

namespace varcode::test {
namespace {

constexpr double kU = 1.0 / (1 << 23);
// One bf16 rounding moves a value by at most half its ulp, 2^-8 relative; two roundings of values
// that already differ a little can land one ulp (2^-7 relative) apart.
constexpr double kBf16Ulp = 1.0 / 128;

bool measuring() {
  const char* v = std::getenv("VARCODE_TEST_MEASURE");
  return v && std::string(v) == "1";
}

// Uniform values in [lo, hi): the derivations below need bounds on the inputs.
Tensor uniform(Shape shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return varcode::testing::random_tensor(shape, seed, lo, hi);
}

// The host tensor in `dtype` (bf16: rounded to nearest even, what both backends then read).
Tensor in_dtype(const Tensor& f32, DType dtype) { return dtype == DType::f32 ? f32.clone() : f32.to(dtype); }

// Every |gpu - cpu| must be within abs_tol + rel_tol * max(|gpu|, |cpu|) (f32 or bf16 tensors of
// one shape). Under VARCODE_TEST_MEASURE=1 it fails on purpose and prints the largest difference.
void expect_close(const Tensor& gpu, const Tensor& cpu, double abs_tol, double rel_tol, const std::string& what) {
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  const Tensor a = gpu.to(DType::f32), b = cpu.to(DType::f32);  // host f32 copies
  double max_diff = 0, worst = 0;                               // worst: the largest |diff| / its tolerance
  int64_t worst_at = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    if (!std::isfinite(x) || !std::isfinite(y)) {
      ADD_FAILURE() << what << ": non-finite value at " << i << " (gpu " << x << ", cpu " << y << ")";
      return;
    }
    const double d = std::fabs(x - y);
    max_diff = std::max(max_diff, d);
    const double ratio = d / (abs_tol + rel_tol * std::max(std::fabs(x), std::fabs(y)));
    if (ratio > worst) {
      worst = ratio;
      worst_at = i;
    }
  }
  if (measuring()) {
    ADD_FAILURE() << what << ": measured max |gpu - cpu| " << max_diff << " (bound " << abs_tol << " + " << rel_tol
                  << " |value|, worst ratio " << worst << ")";
    return;
  }
  EXPECT_LE(worst, 1.0) << what << ": max |gpu - cpu| " << max_diff << ", worst at " << worst_at << " (gpu "
                        << (worst_at >= 0 ? a.data<float>()[worst_at] : 0.0f) << ", cpu "
                        << (worst_at >= 0 ? b.data<float>()[worst_at] : 0.0f) << ") against " << abs_tol << " + "
                        << rel_tol << " |value|";
}

// Bit-exact agreement (copies and single roundings of identical values).
void expect_equal(const Tensor& gpu, const Tensor& cpu, const std::string& what) {
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  EXPECT_EQ(max_abs_diff(gpu.to(DType::f32), cpu.to(DType::f32)), 0.0) << what;
}

const char* name_of(DType dt) { return dtype_name(dt); }

// ---- convolutions -------------------------------------------------------------------------------

struct ConvCase {
  const char* name;
  int B, cin, cout, H, W, k;
  backend::ConvGeometry geo;
};

// Weights in [-ws, ws) with ws = K^-1/2, bias in [-0.5, 0.5), inputs and the residual in [-1, 1):
// each output sums K products of at most ws plus the bias and the residual, S <= K ws + 1.5. Both
// backends compute it in f32 (bf16 activations: the same bf16 inputs, the weights rounded to
// nearest even by both, products exact in f32), so they differ by at most 2 (K + 2) u S.
// A bf16 output adds one bf16 ulp of the value.
struct ConvData {
  Tensor w, b;  // [O, I, k, k], [O]
  double f32_bound = 0;
};

ConvData conv_data(const ConvCase& c, uint32_t seed) {
  const int64_t K = int64_t{c.k} * c.k * c.cin;
  const float ws = static_cast<float>(1.0 / std::sqrt(static_cast<double>(K)));
  ConvData d;
  d.w = uniform({c.cout, c.cin, c.k, c.k}, seed, -ws, ws);  // [O, I, k, k]
  d.b = uniform({c.cout}, seed + 1, -0.5f, 0.5f);           // [O]
  d.f32_bound = 2.0 * static_cast<double>(K + 2) * kU * (static_cast<double>(K) * ws + 1.5);
  return d;
}

void check_conv_nhwc(const backend::Backend& gpu, const ConvCase& c, uint32_t seed) {
  const auto& cpu_be = *cpu();
  ConvData d = conv_data(c, seed);
  const auto cw_cpu = cpu_be.conv_weights(d.w, d.b, c.geo);
  const auto cw_gpu = gpu.conv_weights(d.w, d.b, c.geo);
  const int64_t Ho = cw_cpu->out_h(c.H), Wo = cw_cpu->out_w(c.W);
  ASSERT_EQ(Ho, cw_gpu->out_h(c.H)) << c.name;
  ASSERT_EQ(Wo, cw_gpu->out_w(c.W)) << c.name;
  const Tensor x = uniform({c.B, c.H, c.W, c.cin}, seed + 2);        // [B, H, W, I]
  const Tensor residual = uniform({c.B, Ho, Wo, c.cout}, seed + 3);  // [B, Ho, Wo, O]
  // f32 first, then bf16 through the same weights (the GPU makes their bf16 copy on first use).
  for (DType act : {DType::f32, DType::bf16})
    for (DType out : {DType::f32, DType::bf16}) {
      if (act == DType::f32 && out == DType::bf16) continue;  // refused by both backends
      for (bool accumulate : {false, true}) {
        const std::string what =
            std::string(c.name) + " act " + name_of(act) + " out " + name_of(out) + (accumulate ? " accumulate" : "");
        const Tensor xa = in_dtype(x, act);         // [B, H, W, I]
        const Tensor y0 = in_dtype(residual, out);  // [B, Ho, Wo, O]: the residual, or garbage to overwrite
        Tensor y_cpu = y0.clone();                  // [B, Ho, Wo, O]
        cpu_be.conv2d_nhwc(*cw_cpu, xa, y_cpu, accumulate);
        const Tensor x_gpu = up(gpu, xa);  // [B, H, W, I]
        Tensor y_gpu = up(gpu, y0);        // [B, Ho, Wo, O]
        gpu.conv2d_nhwc(*cw_gpu, x_gpu, y_gpu, accumulate);
        expect_close(down(gpu, y_gpu), y_cpu, d.f32_bound, out == DType::bf16 ? kBf16Ulp : 0.0, what);
      }
    }
}

TEST(CudaVaeOps, ConvNhwcMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const ConvCase cases[] = {
      // Odd channel counts: the scalar im2col, K padded to 8, a staged output (Cout % 4 != 0).
      {"3x3 same, odd channels", 2, 37, 19, 9, 11, 3, backend::ConvGeometry::same(3)},
      // Cin % 8 == 0: the vectorised im2col; Cout % 4 == 0: the product writes y itself.
      {"3x3 same, aligned channels", 3, 32, 64, 8, 6, 3, backend::ConvGeometry::same(3)},
      // The encoder's Downsample2x: pad right and bottom by one, 3x3 stride 2, no other padding.
      {"downsample stride 2, pad right/bottom", 2, 24, 24, 10, 14, 3, {2, 0, 0, 1, 1}},
      {"downsample stride 2, odd size", 2, 16, 8, 9, 7, 3, {2, 0, 0, 1, 1}},
      {"asymmetric padding, stride 1", 2, 8, 12, 6, 5, 3, {1, 2, 0, 0, 1}},
      // 1x1: the map itself as the product's A (Cin % 8 == 0), and through im2col otherwise.
      {"1x1 plain", 2, 64, 48, 5, 7, 1, backend::ConvGeometry::same(1)},
      {"1x1 odd channels", 3, 13, 7, 4, 5, 1, backend::ConvGeometry::same(1)},
      // The encoder's conv_in (3 channels, K = 27) and the decoder's conv_out (3 outputs).
      {"conv_in, 3 channels", 2, 3, 16, 12, 10, 3, backend::ConvGeometry::same(3)},
      {"conv_out, 3 outputs", 2, 32, 3, 6, 9, 3, backend::ConvGeometry::same(3)},
  };
  uint32_t seed = 100;
  for (const ConvCase& c : cases) {
    check_conv_nhwc(*gpu, c, seed);
    seed += 10;
  }
}

// Batches whose im2col matrix exceeds the 256 MiB chunk of vae_conv.cu: K = 9 * 512 = 4608, so
// f32 chunks hold 14528 rows and bf16 ones 29120, and 2 x 128 x 128 = 32768 output positions take
// three and two chunks, with boundaries inside an image.
TEST(CudaVaeOps, ConvNhwcChunkedBatch) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  check_conv_nhwc(*gpu, {"chunked, 3 outputs (staged)", 2, 512, 3, 128, 128, 3, backend::ConvGeometry::same(3)}, 300);
  check_conv_nhwc(*gpu, {"chunked, 4 outputs (direct)", 2, 512, 4, 128, 128, 3, backend::ConvGeometry::same(3)}, 310);
}

// NCHW f32 (the quantizer's Phi convolutions: 3x3 over 32 channels of a 16 x 16 latent, and
// smaller shapes for the tails).
TEST(CudaVaeOps, ConvNchwMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const auto& cpu_be = *cpu();
  const ConvCase cases[] = {
      {"Phi 3x3 over a 16 x 16 latent", 2, 32, 32, 16, 16, 3, backend::ConvGeometry::same(3)},
      {"stride 2, odd channels", 3, 5, 7, 7, 9, 3, {2, 0, 0, 1, 1}},
      {"1x1", 2, 8, 6, 3, 4, 1, backend::ConvGeometry::same(1)},
  };
  uint32_t seed = 400;
  for (const ConvCase& c : cases) {
    ConvData d = conv_data(c, seed);
    const auto cw_cpu = cpu_be.conv_weights(d.w, d.b, c.geo);
    const auto cw_gpu = gpu->conv_weights(d.w, d.b, c.geo);
    const int64_t Ho = cw_cpu->out_h(c.H), Wo = cw_cpu->out_w(c.W);
    const Tensor x = uniform({c.B, c.cin, c.H, c.W}, seed + 2);        // [B, I, H, W]
    const Tensor residual = uniform({c.B, c.cout, Ho, Wo}, seed + 3);  // [B, O, Ho, Wo]
    for (bool accumulate : {false, true}) {
      Tensor y_cpu = residual.clone();  // [B, O, Ho, Wo]
      cpu_be.conv2d(*cw_cpu, x, y_cpu, accumulate);
      const Tensor x_gpu = up(*gpu, x);   // [B, I, H, W]
      Tensor y_gpu = up(*gpu, residual);  // [B, O, Ho, Wo]
      gpu->conv2d(*cw_gpu, x_gpu, y_gpu, accumulate);
      expect_close(down(*gpu, y_gpu), y_cpu, d.f32_bound, 0.0, std::string(c.name) + (accumulate ? " accumulate" : ""));
    }
    seed += 10;
  }
}

// ---- GroupNorm ----------------------------------------------------------------------------------

// Inputs in [3, 5) (a mean far from zero, as activations have, so that the statistics matter),
// gamma in [0.5, 1.5), beta in [-1, 1). Both backends take the statistics in f64 and round mean and
// 1/std to float (identical but for a rounding tie: 1 ulp), then compute x * scale + shift with
// scale = gamma / std, shift = beta - scale * mean in f32. They may differ in a few roundings of
// those terms (FMA contraction, the tie above, expf against the CPU's exp_approx at ~2 ulp in
// SiLU, whose slope is below 1.1): at most 8 ulps of the largest term T, 8 * 2^-23 * T.
double norm_f32_bound(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups) {
  const int64_t B = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3), cpg = C / groups;
  const float* xp = x.data<float>();
  double largest = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      double sum = 0, sq = 0, max_abs = 0;
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
          const double v = xp[(b * HW + p) * C + c];
          sum += v;
          sq += v * v;
          max_abs = std::max(max_abs, std::fabs(v));
        }
      const double n = static_cast<double>(HW * cpg), mean = sum / n;
      const double rstd = 1.0 / std::sqrt(std::max(0.0, sq / n - mean * mean) + 1e-6);
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
        const double scale = rstd * std::fabs(gamma.data<float>()[c]);
        largest = std::max({largest, max_abs * scale, std::fabs(beta.data<float>()[c]) + scale * std::fabs(mean)});
      }
    }
  return 8.0 * kU * largest;
}

struct NormCase {
  const char* name;
  int B, H, W, C, groups;
};

TEST(CudaVaeOps, GroupNormMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const auto& cpu_be = *cpu();
  const NormCase cases[] = {
      {"2 channels per group, tails", 2, 5, 7, 64, 32},
      {"5 channels per group, a 64 x 64 map (several statistics blocks)", 1, 64, 64, 160, 32},
      {"3 channels per group, one column", 3, 4, 1, 96, 32},
  };
  uint32_t seed = 500;
  for (const NormCase& c : cases) {
    const Tensor x = uniform({c.B, c.H, c.W, c.C}, seed, 3.0f, 5.0f);               // [B, H, W, C]
    const Tensor gamma = uniform({c.C}, seed + 1, 0.5f, 1.5f);                      // [C]
    const Tensor beta = uniform({c.C}, seed + 2, -1.0f, 1.0f);                      // [C]
    const Tensor gamma_gpu = gpu->constant(gamma), beta_gpu = gpu->constant(beta);  // [C] each
    const Tensor y0 = uniform(x.shape(), seed + 3);                                 // garbage to overwrite
    for (DType in : {DType::f32, DType::bf16})
      for (DType out : {DType::f32, DType::bf16})
        for (bool silu : {false, true}) {
          const std::string what =
              std::string(c.name) + " in " + name_of(in) + " out " + name_of(out) + (silu ? " + SiLU" : "");
          const Tensor xi = in_dtype(x, in);  // [B, H, W, C]
          const double bound = norm_f32_bound(xi.to(DType::f32), gamma, beta, c.groups);
          Tensor y_cpu = in_dtype(y0, out);  // [B, H, W, C]
          cpu_be.group_norm_nhwc(xi, gamma, beta, c.groups, 1e-6f, silu, y_cpu);
          const Tensor x_gpu = up(*gpu, xi);           // [B, H, W, C]
          Tensor y_gpu = up(*gpu, in_dtype(y0, out));  // [B, H, W, C]
          gpu->group_norm_nhwc(x_gpu, gamma_gpu, beta_gpu, c.groups, 1e-6f, silu, y_gpu);
          expect_close(down(*gpu, y_gpu), y_cpu, bound, out == DType::bf16 ? kBf16Ulp : 0.0, what);
          // In place (the ResnetBlock's norm2 on its own map): the output aliases the input.
          if (in == out) {
            Tensor inplace = up(*gpu, xi);  // [B, H, W, C]: input and output
            gpu->group_norm_nhwc(inplace, gamma_gpu, beta_gpu, c.groups, 1e-6f, silu, inplace);
            expect_close(down(*gpu, inplace), y_cpu, bound, out == DType::bf16 ? kBf16Ulp : 0.0, what + " in place");
          }
        }
    seed += 10;
  }
}

// ---- upsample and layouts -------------------------------------------------------------------------

// Copies, and at most one round-to-nearest-even of the same f32 value: bit-exact.
TEST(CudaVaeOps, UpsampleNearest2xMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const auto& cpu_be = *cpu();
  const Tensor x = uniform({2, 3, 5, 7}, 600);  // [B, H, W, C]
  for (DType in : {DType::f32, DType::bf16})
    for (DType out : {DType::f32, DType::bf16}) {
      const Tensor xi = in_dtype(x, in);                 // [B, H, W, C]
      Tensor y_cpu = Tensor::empty(out, {2, 6, 10, 7});  // [B, 2H, 2W, C]
      cpu_be.upsample_nearest2x_nhwc(xi, y_cpu);
      const Tensor x_gpu = up(*gpu, xi);              // [B, H, W, C]
      Tensor y_gpu = gpu->alloc(out, {2, 6, 10, 7});  // [B, 2H, 2W, C]
      gpu->upsample_nearest2x_nhwc(x_gpu, y_gpu);
      expect_equal(down(*gpu, y_gpu), y_cpu, std::string("upsample in ") + name_of(in) + " out " + name_of(out));
    }
}

TEST(CudaVaeOps, LayoutChangesMatchCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const auto& cpu_be = *cpu();
  const Tensor nchw = uniform({3, 5, 4, 7}, 700, -2.0f, 2.0f);  // [B, C, H, W]
  const Tensor nchw_gpu = up(*gpu, nchw);                       // [B, C, H, W]
  for (DType out : {DType::f32, DType::bf16}) {
    Tensor y_cpu = Tensor::empty(out, {3, 4, 7, 5});  // [B, H, W, C]
    cpu_be.nchw_to_nhwc(nchw, y_cpu);
    Tensor y_gpu = gpu->alloc(out, {3, 4, 7, 5});  // [B, H, W, C]
    gpu->nchw_to_nhwc(nchw_gpu, y_gpu);
    expect_equal(down(*gpu, y_gpu), y_cpu, std::string("nchw_to_nhwc out ") + name_of(out));
  }
  const Tensor nhwc = uniform({3, 4, 7, 5}, 701, -2.0f, 2.0f);  // [B, H, W, C]
  const Tensor nhwc_gpu = up(*gpu, nhwc);                       // [B, H, W, C]
  // Without a clamp (lo > hi), and the decoder's clamp to [-1, 1] (values reach +-2 here).
  for (auto [lo, hi] : {std::pair{1.0f, -1.0f}, std::pair{-1.0f, 1.0f}}) {
    Tensor y_cpu = Tensor::empty(DType::f32, {3, 5, 4, 7});  // [B, C, H, W]
    cpu_be.nhwc_to_nchw(nhwc, y_cpu, lo, hi);
    Tensor y_gpu = gpu->alloc(DType::f32, {3, 5, 4, 7});  // [B, C, H, W]
    gpu->nhwc_to_nchw(nhwc_gpu, y_gpu, lo, hi);
    expect_equal(down(*gpu, y_gpu), y_cpu, lo <= hi ? "nhwc_to_nchw clamped" : "nhwc_to_nchw");
  }
}

// ---- attention ----------------------------------------------------------------------------------

// q, k, v in [-1, 1), N positions, C channels. Scores C^-1/2 q.k: each backend's sum of C products
// is within C u C^-1/2 C = u C^1.5 (plus one rounding of the scaling), so the two differ by
// e_s <= 2 (C + 1) C^0.5 u. Shifting every score by at most e_s moves each softmax weight by at most
// 2 e_s relative, and each side's exp and normalisation (N terms) add (N + 4) u relative. The output
// sums N weights (summing to 1) times |v| <= 1, with its own N u per side. Bound:
// 2 e_s + 2 (N + 4) u + 2 N u.
double attention_bound(int64_t N, int64_t C) {
  const double e_s = 2.0 * static_cast<double>(C + 1) * std::sqrt(static_cast<double>(C)) * kU;
  return 2.0 * e_s + 2.0 * static_cast<double>(N + 4) * kU + 2.0 * static_cast<double>(N) * kU;
}

TEST(CudaVaeOps, AttentionMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const auto& cpu_be = *cpu();
  struct Case {
    const char* name;
    int B, H, W, C;
  };
  const Case cases[] = {
      {"the official mid block: 16 x 16, C = 512", 2, 16, 16, 512},
      {"tails: 7 x 9, C = 37", 3, 7, 9, 37},
      {"one position", 2, 1, 1, 8},
  };
  uint32_t seed = 800;
  for (const Case& c : cases) {
    const Tensor qkv = uniform({c.B, c.H, c.W, 3 * c.C}, seed);      // [B, H, W, 3C]
    Tensor h_cpu = Tensor::empty(DType::f32, {c.B, c.H, c.W, c.C});  // [B, H, W, C]
    cpu_be.vae_attention_nhwc(qkv, h_cpu);
    const Tensor qkv_gpu = up(*gpu, qkv);                         // [B, H, W, 3C]
    Tensor h_gpu = gpu->alloc(DType::f32, {c.B, c.H, c.W, c.C});  // [B, H, W, C]
    gpu->vae_attention_nhwc(qkv_gpu, h_gpu);
    expect_close(down(*gpu, h_gpu), h_cpu, attention_bound(int64_t{c.H} * c.W, c.C), 0.0, c.name);
    seed += 10;
  }
}

TEST(CudaVaeOps, Bf16Activations) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  EXPECT_TRUE(gpu->bf16_activations());
}

}  // namespace
}  // namespace varcode::test
