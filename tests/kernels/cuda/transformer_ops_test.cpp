// The CUDA backend's linear layers and row-wise transformer operations against the CPU backend:
// the same host inputs go to both, the outputs come back to the host and are compared.
//
// Bounds (no GPU measurement exists yet) are derived from the arithmetic: u = 2^-24 is f32's unit
// roundoff, and a sum of k terms accumulated in f32 in any order is within k u sum |term| of the
// exact sum (Higham's gamma_k), on each side. Under VARCODE_TEST_MEASURE=1 every comparison prints
// its error and bound instead, so that the bounds can follow measured errors later.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_test_util.hpp"

namespace varcode {
namespace {

using backend::Backend;
using backend::Epilogue;

constexpr double kU = 0x1p-24;  // f32 unit roundoff

using test::expect_within;
using test::measuring;

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

// A host tensor holding raw bytes of `n` values of T (the seam has no int32 dtype; i8 bytes carry them).
template <typename T>
Tensor bytes_of(const std::vector<T>& v) {
  Tensor t = Tensor::empty(DType::i8, {static_cast<int64_t>(v.size() * sizeof(T))});
  std::memcpy(t.raw(), v.data(), v.size() * sizeof(T));
  return t;
}

struct LinearCase {
  int64_t m, n, k;
  bool bias;
  Epilogue epilogue;
};

std::string describe(const LinearCase& c, DType dt) {
  return std::string(dtype_name(dt)) + " [" + std::to_string(c.m) + ", " + std::to_string(c.k) + "] x [" +
         std::to_string(c.n) + ", " + std::to_string(c.k) + "]^T" + (c.bias ? " + bias" : "") +
         (c.epilogue == Epilogue::gelu_tanh ? " gelu" : "");
}

// The bound for one layer: both sides sum the same k exact products (bf16 x bf16 is exact in f32)
// in different orders, so they differ by at most 2 k u max_n sum_k |x w|; the bias add and the GELU
// (slope at most 1.13) add 1.13x that plus 4 ulp of the output for their own roundings.
double linear_bound(const Tensor& x, const Tensor& w, const Tensor& y_cpu, bool bf16) {
  const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        float a = x.data<float>()[i * k + p], b = w.data<float>()[j * k + p];
        if (bf16) a = round_bf16(a), b = round_bf16(b);
        s += std::fabs(static_cast<double>(a) * b);
      }
      worst = std::max(worst, s);
    }
  double y_max = 0;
  for (int64_t i = 0; i < y_cpu.numel(); ++i) y_max = std::max(y_max, std::fabs(double{y_cpu.data<float>()[i]}));
  return 1.13 * 2 * static_cast<double>(k) * kU * worst + 4 * 2 * kU * y_max;
}

// One layer on both backends from the same host weights; returns {gpu output, cpu output}.
std::pair<Tensor, Tensor> run_linear(const Backend& gpu, const std::shared_ptr<const backend::LinearWeights>& wg,
                                     const std::shared_ptr<const backend::LinearWeights>& wc, const Tensor& x,
                                     Epilogue epilogue) {
  const Backend& cpu = *test::cpu();
  const int64_t m = x.dim(0), n = wg->out_features;
  Tensor xg = gpu.to_device(x);               // [M, K]
  Tensor yg = gpu.alloc(DType::f32, {m, n});  // [M, N]
  gpu.linear(*wg, xg.data<float>(), m, yg.data<float>(), epilogue);
  Tensor xc = cpu.to_device(x);               // [M, K]
  Tensor yc = cpu.alloc(DType::f32, {m, n});  // [M, N]
  cpu.linear(*wc, xc.data<float>(), m, yc.data<float>(), epilogue);
  return {gpu.to_host(yg), yc};
}

void check_linear(const Backend& gpu, DType dt, const LinearCase& c, uint32_t seed) {
  const Backend& cpu = *test::cpu();
  const Tensor x = test::random_tensor({c.m, c.k}, seed);                                    // [M, K]
  const Tensor w = test::random_tensor({c.n, c.k}, seed + 1, 1.0f / std::sqrt(float(c.k)));  // [N, K]
  const Tensor b = c.bias ? test::random_tensor({c.n}, seed + 2, 0.5f) : Tensor();           // [N]
  auto [yg, yc] = run_linear(gpu, gpu.linear_weights(w, b, dt), cpu.linear_weights(w, b, dt), x, c.epilogue);
  ASSERT_EQ(yg.shape(), yc.shape());
  expect_within(test::max_abs_diff(yg, yc), linear_bound(x, w, yc, dt == DType::bf16), describe(c, dt));
}

// Odd sizes (no multiple of any tile), a single row, VAR-like widths, with and without bias and GELU.
const LinearCase kLinearCases[] = {
    {1, 45, 67, true, Epilogue::gelu_tanh},   {37, 384, 128, true, Epilogue::none},
    {5, 96, 64, false, Epilogue::gelu_tanh},  {3, 33, 50, false, Epilogue::none},
    {70, 256, 64, true, Epilogue::gelu_tanh},
};

TEST(CudaTransformerOps, LinearF32MatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  uint32_t seed = 10;
  for (const LinearCase& c : kLinearCases) check_linear(*gpu, DType::f32, c, seed += 3);
}

TEST(CudaTransformerOps, LinearBf16MatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  uint32_t seed = 40;
  for (const LinearCase& c : kLinearCases) check_linear(*gpu, DType::bf16, c, seed += 3);
}

TEST(CudaTransformerOps, LinearFromBf16HostWeights) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  // A bf16 checkpoint's weight held in f32 and in bf16: both sides widen / keep it the same way.
  const LinearCase c{9, 130, 96, true, Epilogue::none};
  const Tensor x = test::random_tensor({c.m, c.k}, 71);                        // [M, K]
  const Tensor w = test::random_tensor({c.n, c.k}, 72, 0.1f).to(DType::bf16);  // [N, K]
  const Tensor b = test::random_tensor({c.n}, 73);                             // [N]
  const Tensor w32 = w.to(DType::f32);                                         // [N, K]
  for (DType dt : {DType::f32, DType::bf16}) {
    auto [yg, yc] =
        run_linear(*gpu, gpu->linear_weights(w, b, dt), test::cpu()->linear_weights(w, b, dt), x, c.epilogue);
    expect_within(test::max_abs_diff(yg, yc), linear_bound(x, w32, yc, dt == DType::bf16),
                  "bf16 host weight, " + describe(c, dt));
  }
}

TEST(CudaTransformerOps, Int8WeightsDequantisedMatchCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const int64_t n = 77, k = 96, m = 6;
  Tensor q = Tensor::empty(DType::i8, {n, k});  // [N, K]
  for (int64_t i = 0; i < n * k; ++i) q.data<int8_t>()[i] = static_cast<int8_t>((i * 37 + 11) % 255 - 127);
  Tensor scale = test::random_tensor({n}, 81, 0.01f);  // [N]
  for (int64_t i = 0; i < n; ++i) scale.data<float>()[i] = std::fabs(scale.data<float>()[i]) + 1e-3f;
  const Tensor b = test::random_tensor({n}, 82);     // [N]
  const Tensor x = test::random_tensor({m, k}, 83);  // [M, K]
  Tensor deq = Tensor::empty(DType::f32, {n, k});    // [N, K] what both sides compute with
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      deq.data<float>()[r * k + c] = static_cast<float>(q.data<int8_t>()[r * k + c]) * scale.data<float>()[r];
  for (DType dt : {DType::f32, DType::bf16}) {
    auto [yg, yc] = run_linear(*gpu, gpu->int8_linear_weights(q, scale, b, dt),
                               test::cpu()->int8_linear_weights(q, scale, b, dt), x, Epilogue::gelu_tanh);
    expect_within(test::max_abs_diff(yg, yc), linear_bound(x, deq, yc, dt == DType::bf16),
                  std::string("int8 file held in ") + dtype_name(dt));
  }
}

TEST(CudaTransformerOps, Int8ComputeIsRefusedWithAReason) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const Tensor w = test::random_tensor({8, 16}, 91);  // [N, K]
  Tensor q = Tensor::zeros(DType::i8, {8, 16});       // [N, K]
  Tensor scale = test::random_tensor({8}, 92);        // [N]
  for (auto make : {std::function<void()>([&] { gpu->linear_weights(w, Tensor(), DType::i8); }),
                    std::function<void()>([&] { gpu->int8_linear_weights(q, scale, Tensor(), DType::i8); })}) {
    try {
      make();
      ADD_FAILURE() << "int8 compute on the GPU was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
    }
  }
}

TEST(CudaTransformerOps, AdalnModulateMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const Backend& cpu = *test::cpu();
  // C = 1000: a block's 256 threads do not divide it; rows share their modulation vector per r.
  const int64_t R = 3, l = 5, C = 1000, stride = 6 * C;
  Tensor x = test::random_tensor({R, l, C}, 101, 2.0f);                // [R, l, C]
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 3.0f;  // a mean far from 0
  const Tensor mod = test::random_tensor({R, stride}, 102);            // [R, 6C]: scale at 2C, shift at 4C
  Tensor xc = cpu.to_device(x), mc = cpu.to_device(mod);
  Tensor oc = cpu.alloc(DType::f32, {R, l, C});  // [R, l, C]
  cpu.adaln_modulate(xc.data<float>(), R, l, C, mc.data<float>() + 2 * C, mc.data<float>() + 4 * C, stride,
                     oc.data<float>());
  double out_max = 0;
  for (int64_t i = 0; i < oc.numel(); ++i) out_max = std::max(out_max, std::fabs(double{oc.data<float>()[i]}));
  // Statistics in double on both sides round to the same f32 mean and rstd or one ulp apart; the
  // four f32 steps after them (one possibly fused on the CPU) then differ by at most 8 ulp of the
  // largest intermediate, bounded by the output's magnitude plus the shift's (|shift| < 6).
  const double bound = 8 * 2 * kU * (out_max + 6.0);
  for (bool in_place : {false, true}) {
    Tensor xg = gpu->to_device(x), mg = gpu->to_device(mod);
    Tensor og = in_place ? xg : gpu->alloc(DType::f32, {R, l, C});  // [R, l, C]
    gpu->adaln_modulate(xg.data<float>(), R, l, C, mg.data<float>() + 2 * C, mg.data<float>() + 4 * C, stride,
                        og.data<float>());
    expect_within(test::max_abs_diff(gpu->to_host(og), oc), bound, in_place ? "adaln in place" : "adaln");
  }
}

TEST(CudaTransformerOps, GatedResidualAddMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const Backend& cpu = *test::cpu();
  const int64_t R = 4, l = 7, C = 333, stride = 6 * C;
  const Tensor x = test::random_tensor({R, l, C}, 111, 3.0f);  // [R, l, C]
  const Tensor y = test::random_tensor({R, l, C}, 112);        // [R, l, C]
  const Tensor mod = test::random_tensor({R, stride}, 113);    // [R, 6C]: gamma at C
  Tensor xc = cpu.to_device(x), yc = cpu.to_device(y), mc = cpu.to_device(mod);
  cpu.gated_residual_add(xc.data<float>(), yc.data<float>(), R, l, C, mc.data<float>() + C, stride);
  Tensor xg = gpu->to_device(x), yg = gpu->to_device(y), mg = gpu->to_device(mod);
  gpu->gated_residual_add(xg.data<float>(), yg.data<float>(), R, l, C, mg.data<float>() + C, stride);
  // x + g y: the GPU rounds the product and the sum, the CPU may fuse them: 2 ulp of |x| + |g y|.
  double mag = 0;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < l * C; ++i)
      mag = std::max(mag,
                     std::fabs(double{x.data<float>()[r * l * C + i]}) +
                         std::fabs(double{mod.data<float>()[r * stride + C + i % C]} * y.data<float>()[r * l * C + i]));
  expect_within(test::max_abs_diff(gpu->to_host(xg), xc), 2 * 2 * kU * mag, "gated residual");
}

TEST(CudaTransformerOps, SiluMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const Backend& cpu = *test::cpu();
  const int64_t n = 4099;
  const Tensor x = test::random_tensor({n}, 121, 4.0f);  // [n]
  Tensor xc = cpu.to_device(x), yc = cpu.alloc(DType::f32, {n});
  cpu.silu(xc.data<float>(), n, yc.data<float>());
  // x / (1 + e^-x) with e^-x within 2 ulp on each side (the CPU's polynomial, CUDA's expf): the
  // quotient moves by |x| e^-x / (1 + e^-x)^2 * 4u <= |x| u, plus 2 ulp of the result each side.
  double bound = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = std::fabs(double{x.data<float>()[i]});
    bound = std::max(bound, v * kU + 4 * 2 * kU * v);
  }
  for (bool in_place : {false, true}) {
    Tensor xg = gpu->to_device(x);
    Tensor yg = in_place ? xg : gpu->alloc(DType::f32, {n});  // [n]
    gpu->silu(xg.data<float>(), n, yg.data<float>());
    expect_within(test::max_abs_diff(gpu->to_host(yg), yc), bound, in_place ? "silu in place" : "silu");
  }
}

TEST(CudaTransformerOps, AddRowsAndGatherRowsAreExact) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const Backend& cpu = *test::cpu();
  // add_rows: one correctly rounded addition per element on both sides: bit-identical.
  const int64_t rows = 5, n = 1027;
  const Tensor x = test::random_tensor({rows, n}, 131);  // [rows, n]
  const Tensor v = test::random_tensor({n}, 132);        // [n]
  Tensor xc = cpu.to_device(x), vc = cpu.to_device(v), yc = cpu.alloc(DType::f32, {rows, n});
  cpu.add_rows(xc.data<float>(), rows, n, vc.data<float>(), yc.data<float>());
  for (bool in_place : {false, true}) {
    Tensor xg = gpu->to_device(x), vg = gpu->to_device(v);
    Tensor yg = in_place ? xg : gpu->alloc(DType::f32, {rows, n});  // [rows, n]
    gpu->add_rows(xg.data<float>(), rows, n, vg.data<float>(), yg.data<float>());
    EXPECT_EQ(test::max_abs_diff(gpu->to_host(yg), yc), 0.0) << (in_place ? "add_rows in place" : "add_rows");
  }
  // gather_rows: copies, repeated and out-of-order indices.
  const int64_t T = 7, width = 129;
  const Tensor table = test::random_tensor({T, width}, 133);  // [T, width]
  const std::vector<int32_t> idx = {3, 0, 6, 6, 1, 5, 2, 3, 4, 0, 6};
  const int64_t count = static_cast<int64_t>(idx.size());
  Tensor tc = cpu.to_device(table), oc = cpu.alloc(DType::f32, {count, width});
  cpu.gather_rows(tc.data<float>(), width, idx.data(), count, oc.data<float>());
  Tensor tg = gpu->to_device(table), ig = gpu->to_device(bytes_of(idx));
  Tensor og = gpu->alloc(DType::f32, {count, width});  // [count, width]
  gpu->gather_rows(tg.data<float>(), width, static_cast<const int32_t*>(ig.raw()), count, og.data<float>());
  EXPECT_EQ(test::max_abs_diff(gpu->to_host(og), oc), 0.0) << "gather_rows";
}

TEST(CudaTransformerOps, CfgMatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const Backend& cpu = *test::cpu();
  const int64_t B = 4, n = 3, V = 1001;
  std::vector<backend::ImageDraw> draws(B);
  const double strengths[] = {4.0, 4.0, 1.5, 0.0};  // two images share one (the CPU's grouped path)
  for (int64_t b = 0; b < B; ++b) draws[static_cast<size_t>(b)].cfg = strengths[b];
  const double ratio = 3.0 / 9.0;
  const Tensor logits = test::random_tensor({2 * B, n, V}, 141, 3.0f);  // [2B, n, V]
  Tensor lc = cpu.to_device(logits), oc = cpu.alloc(DType::f32, {B, n, V});
  cpu.cfg(lc.data<float>(), B, n, V, draws.data(), ratio, oc.data<float>());
  Tensor lg = gpu->to_device(logits), dg = gpu->to_device(bytes_of(draws));
  Tensor og = gpu->alloc(DType::f32, {B, n, V});  // [B, n, V]
  gpu->cfg(lg.data<float>(), B, n, V, static_cast<const backend::ImageDraw*>(dg.raw()), ratio, og.data<float>());
  // The same factors rounded to f32 once, a product each and a difference: bit-identical unless
  // the host compiler fuses one product into the difference (1 ulp of |a c| + |b u|).
  double mag = 0;
  const int64_t row = n * V;
  for (int64_t b = 0; b < B; ++b) {
    const double t = strengths[b] * ratio;
    for (int64_t i = 0; i < row; ++i)
      mag = std::max(mag, std::fabs((1 + t) * logits.data<float>()[b * row + i]) +
                              std::fabs(t * logits.data<float>()[(B + b) * row + i]));
  }
  expect_within(test::max_abs_diff(gpu->to_host(og), oc), 2 * kU * mag, "cfg");
}

}  // namespace
}  // namespace varcode
