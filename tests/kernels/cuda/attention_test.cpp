// The CUDA backend's l2-normalised attention over its KV cache against the CPU backend and against
// a naive reference in double, on VAR's schedule: scales appended one after another into one cache
// (p0 grows, every query of a scale sees keys up to the scale's end), rows in chunks (r0 > 0), and
// a per-token causal schedule (a key limit per query, no runs).
//
// Bounds, derived (no GPU measurement exists yet; VARCODE_TEST_MEASURE=1 prints each error and
// bound instead of checking): q and k are normalised with the same f32 steps on every side, so the
// sides start from identical q, k, v. A score is a 64-term f32 dot product of unit vectors times
// the head scale s: each side is within 64 u s of the exact score (u = 2^-24). With score errors
// within e, each softmax weight moves by a factor within exp(+-(2 e + 4u)) (exp to 2 ulp), which
// moves the output, a convex combination of values, by at most 2 (2 e + 4u) max|v|; summing n
// weighted values in f32 adds n u max|v| per side.
#include "kernels/cpu/attention.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.hpp"
#include "kernels/cuda/cuda_test_util.hpp"

namespace varcode {
namespace {

using backend::Backend;

constexpr int64_t D = 64;
constexpr double kU = 0x1p-24;

using test::expect_within;
using test::measuring;

bool kv_cache_forced_f32() {
  const char* kv = std::getenv("VARCODE_KV_CACHE");
  return kv && std::string(kv) == "f32";
}

// Whether the CPU backend keeps a bf16 cache under bf16 compute (cpu_backend.cpp's rule).
bool cpu_bf16_cache() {
  return !kv_cache_forced_f32() && kernels::cpu::default_bf16_backend() == kernels::cpu::GemmBackend::avx512bf16 &&
         kernels::cpu::bf16_attention_supported();
}

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

// One attention call: tokens [p0, p0 + l), their key limits, and the row chunks it runs in.
struct Call {
  int64_t p0 = 0, l = 0;
  std::vector<int> key_limit;                       // [l]
  std::vector<std::pair<int64_t, int64_t>> chunks;  // (r0, rows)
};

struct Schedule {
  int64_t rows = 0, heads = 0, capacity = 0;
  std::vector<float> scale_mul;  // [H]
  std::vector<Call> calls;
  std::vector<Tensor> qkv;  // per call [R, l, 3C] host
  int64_t c() const { return heads * D; }
  float head_scale(int64_t h) const {
    return std::exp(std::min(scale_mul[static_cast<size_t>(h)], static_cast<float>(std::log(100.0))));
  }
};

// VAR's way: scales of 1, 4, 9, 36 and 70 tokens (70: two query tiles of 64, one partial), 120 keys
// in the end (not a multiple of any key tile), 5 rows run as chunks [0, 2) and [2, 5); one head's
// scale_mul past ln 100 (capped at 100).
Schedule var_schedule(uint32_t seed) {
  Schedule s;
  s.rows = 5;
  s.heads = 4;
  s.scale_mul = {0.5f, 1.7f, 2.4f, 5.0f};
  int64_t p0 = 0;
  for (int64_t l : {1, 4, 9, 36, 70}) {
    Call c;
    c.p0 = p0;
    c.l = l;
    c.key_limit.assign(static_cast<size_t>(l), static_cast<int>(p0 + l));
    c.chunks = {{0, 2}, {2, 3}};
    s.calls.push_back(c);
    p0 += l;
  }
  s.capacity = p0;
  for (const Call& c : s.calls) s.qkv.push_back(test::random_tensor({s.rows, c.l, 3 * s.c()}, seed++));
  return s;
}

// Every token its own limit (t + 1: causal, 100 runs, more than the kernel's parameters hold),
// then a block of 20 tokens that see everything; rows [1, 4) of 5 only.
Schedule causal_schedule(uint32_t seed) {
  Schedule s;
  s.rows = 5;
  s.heads = 2;
  s.scale_mul = {1.0f, 2.0f};
  Call a;
  a.p0 = 0;
  a.l = 100;
  for (int t = 0; t < 100; ++t) a.key_limit.push_back(t + 1);
  a.chunks = {{1, 3}};
  Call b;
  b.p0 = 100;
  b.l = 20;
  b.key_limit.assign(20, 120);
  b.chunks = {{1, 3}};
  s.calls = {a, b};
  s.capacity = 120;
  for (const Call& c : s.calls) s.qkv.push_back(test::random_tensor({s.rows, c.l, 3 * s.c()}, seed++));
  return s;
}

// Every call's output [R, l, C] on `be` (rows outside the chunks stay zero).
std::vector<Tensor> run_backend(const Backend& be, DType compute, const Schedule& s) {
  auto cache = be.kv_cache(s.rows, s.heads, s.capacity, compute);
  Tensor sm = Tensor::empty(DType::f32, {s.heads});  // [H]
  std::copy(s.scale_mul.begin(), s.scale_mul.end(), sm.data<float>());
  const Tensor sm_dev = be.to_device(sm);  // [H]
  const int64_t C = s.c();
  std::vector<Tensor> outs;
  for (size_t i = 0; i < s.calls.size(); ++i) {
    const Call& c = s.calls[i];
    const Tensor qkv = be.to_device(s.qkv[i]);            // [R, l, 3C]
    Tensor out = be.zeros(DType::f32, {s.rows, c.l, C});  // [R, l, C]
    for (auto [r0, rows] : c.chunks)
      be.attention(*cache, r0, rows, qkv.data<float>() + r0 * c.l * 3 * C, c.l, c.p0, sm_dev.data<float>(), c.key_limit,
                   out.data<float>() + r0 * c.l * C);
    outs.push_back(be.to_host(out));
  }
  return outs;
}

// The naive reference: normalised keys and values kept per position (rounded to bf16 where the
// GPU's bf16 cache rounds them: q, k, v), each query's softmax and weighted sum in double.
std::vector<Tensor> run_reference(const Schedule& s, bool bf16) {
  const int64_t R = s.rows, H = s.heads, C = s.c(), cap = s.capacity;
  std::vector<float> kc(static_cast<size_t>(R * H * cap * D)), vc(kc.size());  // [R, H, cap, 64]
  auto at = [&](int64_t r, int64_t h, int64_t j) { return static_cast<size_t>(((r * H + h) * cap + j) * D); };
  auto rnd = [&](float v) { return bf16 ? round_bf16(v) : v; };
  std::vector<Tensor> outs;
  for (size_t i = 0; i < s.calls.size(); ++i) {
    const Call& c = s.calls[i];
    const float* qkv = s.qkv[i].data<float>();               // [R, l, 3C]
    Tensor out = Tensor::zeros(DType::f32, {R, c.l, C});     // [R, l, C]
    std::vector<float> q(static_cast<size_t>(R * c.l * C));  // [R, l, C] normalised, scaled
    for (auto [r0, rows] : c.chunks)
      for (int64_t r = r0; r < r0 + rows; ++r)
        for (int64_t t = 0; t < c.l; ++t)
          for (int64_t h = 0; h < H; ++h) {
            const float* row = qkv + (r * c.l + t) * 3 * C;
            const float* qh = row + h * D;
            const float* kh = row + C + h * D;
            const float* vh = row + 2 * C + h * D;
            float qn = 0, kn = 0;
            for (int64_t d = 0; d < D; ++d) {
              qn += qh[d] * qh[d];
              kn += kh[d] * kh[d];
            }
            const float qs = s.head_scale(h) / std::max(std::sqrt(qn), 1e-12f);
            const float ks = 1.0f / std::max(std::sqrt(kn), 1e-12f);
            for (int64_t d = 0; d < D; ++d) {
              q[static_cast<size_t>((r * c.l + t) * C + h * D + d)] = rnd(qh[d] * qs);
              kc[at(r, h, c.p0 + t) + static_cast<size_t>(d)] = rnd(kh[d] * ks);
              vc[at(r, h, c.p0 + t) + static_cast<size_t>(d)] = rnd(vh[d]);
            }
          }
    for (auto [r0, rows] : c.chunks)
      for (int64_t r = r0; r < r0 + rows; ++r)
        for (int64_t t = 0; t < c.l; ++t)
          for (int64_t h = 0; h < H; ++h) {
            const int64_t n = c.key_limit[static_cast<size_t>(t)];
            const float* qh = q.data() + (r * c.l + t) * C + h * D;
            std::vector<double> score(static_cast<size_t>(n));
            double mx = -INFINITY;
            for (int64_t j = 0; j < n; ++j) {
              double sc = 0;
              for (int64_t d = 0; d < D; ++d) sc += double{qh[d]} * kc[at(r, h, j) + static_cast<size_t>(d)];
              score[static_cast<size_t>(j)] = sc;
              mx = std::max(mx, sc);
            }
            double sum = 0;
            std::vector<double> acc(D, 0.0);
            for (int64_t j = 0; j < n; ++j) {
              const double p = std::exp(score[static_cast<size_t>(j)] - mx);
              sum += p;
              for (int64_t d = 0; d < D; ++d)
                acc[static_cast<size_t>(d)] += p * vc[at(r, h, j) + static_cast<size_t>(d)];
            }
            float* o = out.data<float>() + (r * c.l + t) * C + h * D;
            for (int64_t d = 0; d < D; ++d) o[d] = static_cast<float>(acc[static_cast<size_t>(d)] / sum);
          }
    outs.push_back(out);
  }
  return outs;
}

double max_abs_value(const Schedule& s) {
  double m = 0;
  for (const Tensor& t : s.qkv)
    for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(double{t.data<float>()[i]}));
  return m;
}

// The f32 bound of the header for one head's scale, n keys at most, values up to v_max.
double f32_bound(double scale, int64_t n, double v_max) {
  const double score_err = 2 * 64 * kU * scale;  // both sides
  return v_max * (2 * (2 * score_err + 8 * kU) + 2 * static_cast<double>(n) * kU);
}

// Compares every call's output head by head, each against `bound(head, max keys of the call)`.
template <typename Bound>
void compare(const Schedule& s, const std::vector<Tensor>& a, const std::vector<Tensor>& b, Bound bound,
             const std::string& what) {
  ASSERT_EQ(a.size(), s.calls.size());
  ASSERT_EQ(b.size(), s.calls.size());
  const int64_t C = s.c();
  for (size_t i = 0; i < s.calls.size(); ++i) {
    const Call& c = s.calls[i];
    ASSERT_EQ(a[i].shape(), b[i].shape());
    const int64_t n_max = *std::max_element(c.key_limit.begin(), c.key_limit.end());
    for (int64_t h = 0; h < s.heads; ++h) {
      std::vector<float> ah, bh;  // this head's outputs
      for (int64_t rt = 0; rt < s.rows * c.l; ++rt)
        for (int64_t d = 0; d < D; ++d) {
          ah.push_back(a[i].data<float>()[rt * C + h * D + d]);
          bh.push_back(b[i].data<float>()[rt * C + h * D + d]);
        }
      expect_within(test::max_abs_diff(ah, bh), bound(h, n_max),
                    what + ", call " + std::to_string(i) + " (p0 " + std::to_string(c.p0) + ", l " +
                        std::to_string(c.l) + "), head " + std::to_string(h));
    }
  }
}

void check_gpu(const Backend& gpu, const Schedule& s, DType compute) {
  const bool gpu_bf16 = compute == DType::bf16 && !kv_cache_forced_f32();
  const bool cpu_bf16 = compute == DType::bf16 && cpu_bf16_cache();
  const double v_max = max_abs_value(s);
  const auto on_gpu = run_backend(gpu, compute, s);
  const std::string mode = dtype_name(compute);
  // Against the reference that rounds what the GPU rounds: only the GPU's f32 arithmetic differs.
  compare(
      s, on_gpu, run_reference(s, gpu_bf16), [&](int64_t h, int64_t n) { return f32_bound(s.head_scale(h), n, v_max); },
      mode + " GPU vs reference");
  // Against the CPU backend: the same, plus what only one side rounds to bf16 (unit roundoff
  // 2^-8) when the caches differ: the CPU's bf16 softmax weights (2^-8 max|v|), or, under an f32
  // CPU cache, q and k (|dq|, |dk| <= 2^-8: scores move by up to 2^-7 s) and v (2^-8 max|v|). Under a large head scale
  // the latter says little; the reference comparison above is the one that holds tightly there.
  const auto on_cpu = run_backend(*test::cpu(), compute, s);
  compare(
      s, on_gpu, on_cpu,
      [&](int64_t h, int64_t n) {
        double b = f32_bound(s.head_scale(h), n, v_max);
        if (cpu_bf16) b += 0x1p-8 * v_max;
        if (gpu_bf16 && !cpu_bf16) b += v_max * (2 * std::expm1(2 * 0x1p-7 * s.head_scale(h) + 8 * kU) + 0x1p-8);
        return b;
      },
      mode + " GPU vs CPU backend");
}

TEST(CudaAttention, VarScheduleF32MatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  check_gpu(*gpu, var_schedule(200), DType::f32);
}

TEST(CudaAttention, VarScheduleBf16MatchesCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  check_gpu(*gpu, var_schedule(300), DType::bf16);
}

TEST(CudaAttention, PerTokenKeyLimitsMatchCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  check_gpu(*gpu, causal_schedule(400), DType::f32);
  check_gpu(*gpu, causal_schedule(500), DType::bf16);
}

TEST(CudaAttention, OutOfRangeCallsAreRefused) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  auto cache = gpu->kv_cache(2, 1, 8, DType::f32);
  Tensor qkv = gpu->zeros(DType::f32, {2, 4, 3 * D});  // [R, l, 3C]
  Tensor out = gpu->alloc(DType::f32, {2, 4, D});      // [R, l, C]
  Tensor sm = gpu->zeros(DType::f32, {1});             // [H]
  const std::vector<int> ok(4, 4), too_far(4, 9);
  EXPECT_THROW(gpu->attention(*cache, 1, 2, qkv.data<float>(), 4, 0, sm.data<float>(), ok, out.data<float>()), Error);
  EXPECT_THROW(gpu->attention(*cache, 0, 2, qkv.data<float>(), 4, 6, sm.data<float>(), ok, out.data<float>()), Error);
  EXPECT_THROW(gpu->attention(*cache, 0, 2, qkv.data<float>(), 4, 0, sm.data<float>(), too_far, out.data<float>()),
               Error);
}

// Runs everywhere (no GPU needed): the reference the GPU tests trust agrees with the CPU backend,
// within the same bounds (f32: both sides' f32 arithmetic; a bf16 CPU cache: plus its bf16
// softmax weights).
TEST(CudaAttention, ReferenceMatchesCpuBackend) {
  for (DType compute : {DType::f32, DType::bf16}) {
    const bool cpu_bf16 = compute == DType::bf16 && cpu_bf16_cache();
    for (const Schedule& s : {var_schedule(600), causal_schedule(700)}) {
      const double v_max = max_abs_value(s);
      compare(
          s, run_backend(*test::cpu(), compute, s), run_reference(s, cpu_bf16),
          [&](int64_t h, int64_t n) {
            return f32_bound(s.head_scale(h), n, v_max) + (cpu_bf16 ? 0x1p-8 * v_max : 0.0);
          },
          std::string(dtype_name(compute)) + " CPU backend vs reference");
    }
  }
}

}  // namespace
}  // namespace varcode
