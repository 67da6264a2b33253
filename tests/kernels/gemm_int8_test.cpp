// The int8 GEMM (gemm_int8.cpp): the quantisers against the formulas of gemm_int8.hpp, the bare
// int32 products against a naive integer reference bit for bit, the dequantised output against
// the same formulas in scalar code bit for bit, and the whole against the f32 reference within
// the quantisation's error; M, N and K tails, K over several cache blocks; the refusal message.
// Each kernel the CPU runs (Int8Isa): the zmm one, the 256-bit one with the EVEX vpdpbusd
// (avx512vnni-ymm, on AVX512-VNNI CPUs) and with the VEX one (avxvnni, on AVX-VNNI CPUs), each
// skipped, saying so, where the CPU lacks its instruction.
#include "kernels/cpu/gemm_int8.hpp"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/gemm.hpp"
#include "kernels/reference/references.hpp"
#include "test_util.hpp"
#include "varcode/error.hpp"

namespace varcode::kernels::cpu {

namespace {
// The activation quantiser of gemm_int8.hpp, written out plainly.
void reference_quantize_row(const float* x, int64_t k, uint8_t* a, float* scale, int32_t* zero) {
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < k; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  float s = (hi - lo) / 255.0f;
  if (!(s > 0) || !std::isfinite(1.0f / s)) s = 1.0f;
  const float inv = 1.0f / s;
  const int32_t z = static_cast<int32_t>(std::nearbyint(-lo * inv));
  for (int64_t i = 0; i < k; ++i) {
    const int32_t q = static_cast<int32_t>(std::nearbyint(x[i] * inv)) + z;
    a[i] = static_cast<uint8_t>(q < 0 ? 0 : q > 255 ? 255 : q);
  }
  *scale = s;
  *zero = z;
}

std::vector<uint8_t> random_u8(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<uint8_t>(d(gen));
  return v;
}

std::vector<int8_t> random_s8(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(-127, 127);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(d(gen));
  return v;
}

// Extremes in every row and column too: the largest products and sums the format allows.
void add_extremes(std::vector<uint8_t>& a, std::vector<int8_t>& q) {
  for (size_t i = 0; i < a.size(); i += 7) a[i] = 255;
  for (size_t i = 0; i < q.size(); i += 5) q[i] = static_cast<int8_t>(i % 2 ? -127 : 127);
}

void check_raw(Int8Isa isa, int64_t m, int64_t n, int64_t k) {
  auto a = random_u8(m * k, static_cast<uint32_t>(m * 131 + k));  // [M, K]
  auto q = random_s8(n * k, static_cast<uint32_t>(n * 17 + k));   // [N, K]
  add_extremes(a, q);
  const std::vector<float> scale(static_cast<size_t>(n), 1.0f);
  const Int8Gemm g(q.data(), scale.data(), n, k, isa);
  std::vector<int32_t> acc(static_cast<size_t>(m * n) + 16, -7);  // [M, N] and a guard zone
  g.forward_raw(a.data(), k, m, acc.data());
  int64_t wrong = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t ref = 0;
      for (int64_t t = 0; t < k; ++t)
        ref += int64_t{a[static_cast<size_t>(i * k + t)]} * q[static_cast<size_t>(j * k + t)];
      if (ref != acc[static_cast<size_t>(i * n + j)]) ++wrong;
    }
  EXPECT_EQ(wrong, 0) << int8_isa_name(isa) << " m=" << m << " n=" << n << " k=" << k << ": " << wrong << " of "
                      << m * n << " int32 sums differ from the integer reference";
  EXPECT_TRUE(std::all_of(acc.begin() + m * n, acc.end(), [](int32_t v) { return v == -7; }))
      << int8_isa_name(isa) << " m=" << m << " n=" << n << " k=" << k << ": wrote past the output";
}

// What a CPU without `isa`'s instructions is missing, for the skip message.
std::string missing(Int8Isa isa) {
  return std::string("this CPU cannot run the ") + int8_isa_name(isa) + " kernel (" +
         (isa == Int8Isa::avxvnni ? "no AVX-VNNI: no avx_vnni flag in /proc/cpuinfo"
          : isa == Int8Isa::none  ? "scalar: always runs"
                                  : "no AVX512-VNNI with AVX512BW/VL/DQ") +
         ")";
}

std::string isa_test_name(const testing::TestParamInfo<Int8Isa>& info) {
  std::string name = int8_isa_name(info.param);
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// The kernels, one test instance each.
class Int8Kernel : public testing::TestWithParam<Int8Isa> {
 protected:
  void SetUp() override {
    if (!int8_isa_runs_here(GetParam())) GTEST_SKIP() << missing(GetParam());
  }
};
// The activation quantiser of each kernel, and the scalar one (none).
class Int8Quantizer : public Int8Kernel {};
}  // namespace

TEST(Int8Quantize, WeightsRoundTripPerChannel) {
  const int64_t n = 37, k = 301;
  auto w = test::random_vector(n * k, 3, 0.05f);                                 // [N, K]
  for (int64_t i = 0; i < k; ++i) w[static_cast<size_t>(5 * k + i)] = 0.0f;      // an all-zero channel
  for (int64_t i = 0; i < k; ++i) w[static_cast<size_t>(6 * k + i)] *= 1000.0f;  // a channel 1000x wider
  std::vector<int8_t> q(static_cast<size_t>(n * k));
  std::vector<float> s(static_cast<size_t>(n));
  quantize_weights_int8(w.data(), n, k, q.data(), s.data());
  EXPECT_EQ(s[5], 1.0f);
  for (int64_t r = 0; r < n; ++r) {
    float amax = 0;
    int peak = 0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(w[static_cast<size_t>(r * k + i)]));
    if (r != 5) {
      EXPECT_EQ(s[static_cast<size_t>(r)], amax / 127.0f) << "channel " << r;
    }
    double worst = 0;
    for (int64_t i = 0; i < k; ++i) {
      const size_t at = static_cast<size_t>(r * k + i);
      EXPECT_EQ(q[at], static_cast<int8_t>(std::nearbyint(w[at] / s[static_cast<size_t>(r)])));
      peak = std::max(peak, std::abs(int{q[at]}));
      worst = std::max(worst, std::fabs(w[at] - static_cast<double>(q[at]) * s[static_cast<size_t>(r)]));
    }
    // Round to nearest: half a step, plus the f32 rounding of w / s.
    EXPECT_LE(worst, 0.5 * s[static_cast<size_t>(r)] * (1 + 1e-5)) << "channel " << r;
    if (r != 5) {
      EXPECT_EQ(peak, 127) << "channel " << r << " does not use the symmetric range";
    }
  }
}

TEST_P(Int8Quantizer, RowsMatchTheFormulasAndRoundTrip) {
  for (const int64_t k : {1, 15, 16, 17, 100, 1920}) {
    const int64_t m = 9;
    auto x = test::random_vector(m * k, static_cast<uint32_t>(k));  // [M, K]
    for (int64_t i = 0; i < k; ++i) {
      x[static_cast<size_t>(i)] = 0.0f;                                                         // an all-zero row
      x[static_cast<size_t>(k + i)] = std::fabs(x[static_cast<size_t>(k + i)]) + 0.5f;          // all positive
      x[static_cast<size_t>(2 * k + i)] = -std::fabs(x[static_cast<size_t>(2 * k + i)]);        // all non-positive
      x[static_cast<size_t>(3 * k + i)] = std::max(x[static_cast<size_t>(3 * k + i)], -0.17f);  // GELU-like
    }
    const int64_t lda = k + 5;
    std::vector<uint8_t> a(static_cast<size_t>(m * lda)), ra(static_cast<size_t>(k));
    std::vector<float> s(static_cast<size_t>(m));
    std::vector<int32_t> z(static_cast<size_t>(m));
    quantize_rows_u8(x.data(), m, k, a.data(), lda, s.data(), z.data(), GetParam());
    for (int64_t r = 0; r < m; ++r) {
      float rs = 0;
      int32_t rz = 0;
      reference_quantize_row(x.data() + r * k, k, ra.data(), &rs, &rz);
      ASSERT_EQ(s[static_cast<size_t>(r)], rs) << "k=" << k << " row " << r;
      ASSERT_EQ(z[static_cast<size_t>(r)], rz) << "k=" << k << " row " << r;
      ASSERT_EQ(std::memcmp(a.data() + r * lda, ra.data(), static_cast<size_t>(k)), 0) << "k=" << k << " row " << r;
      double worst = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double back = double{rs} * (int{a[static_cast<size_t>(r * lda + i)]} - rz);
        worst = std::max(worst, std::fabs(back - x[static_cast<size_t>(r * k + i)]));
        if (x[static_cast<size_t>(r * k + i)] == 0.0f) {
          EXPECT_EQ(back, 0.0) << "zero is not exact";
        }
      }
      EXPECT_LE(worst, 0.5 * rs * (1 + 1e-4)) << "k=" << k << " row " << r;
    }
  }
}

TEST_P(Int8Kernel, RawSumsMatchIntegerReferenceBitForBit) {
  // N tails at every width of a 16-column group (the ymm kernel splits it at 8) and of a panel.
  for (const int64_t m : {1, 5, 6, 7, 13, 40})
    for (const int64_t n : {1, 7, 8, 9, 15, 16, 17, 24, 64, 65, 200})
      for (const int64_t k : {1, 3, 4, 5, 63, 257}) check_raw(GetParam(), m, n, k);
  // K over several of the kernel's 2048-wide K blocks (partial sums through the output), with a
  // tail; the largest K of the models (fc2 of d30: 7680) with every product at its extreme.
  check_raw(GetParam(), 13, 70, 4101);
  check_raw(GetParam(), 130, 33, 2049);
  check_raw(GetParam(), 7, 20, 7680);
}

TEST_P(Int8Kernel, DequantisedOutputMatchesTheFormulasBitForBit) {
  for (const auto& [m, n, k] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {7, 17, 5}, {5, 8, 9}, {13, 65, 63}, {37, 200, 333}, {6, 64, 2050}, {130, 33, 4101}}) {
    const auto x = test::random_vector(m * k, 31);        // [M, K]
    const auto w = test::random_vector(n * k, 32, 0.1f);  // [N, K]
    const auto b = test::random_vector(n, 33);            // [N]
    std::vector<int8_t> q(static_cast<size_t>(n * k));
    std::vector<float> ws(static_cast<size_t>(n));
    quantize_weights_int8(w.data(), n, k, q.data(), ws.data());
    const Int8Gemm g(q.data(), ws.data(), n, k, GetParam());
    std::vector<uint8_t> a(static_cast<size_t>(m * k));
    std::vector<float> xs(static_cast<size_t>(m)), ref(static_cast<size_t>(m * n)), ref_nb(ref.size());
    std::vector<int32_t> xz(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) reference_quantize_row(x.data() + i * k, k, a.data() + i * k, &xs[i], &xz[i]);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t acc = 0, colsum = 0;
        for (int64_t t = 0; t < k; ++t) {
          acc += int64_t{a[static_cast<size_t>(i * k + t)]} * q[static_cast<size_t>(j * k + t)];
          colsum += q[static_cast<size_t>(j * k + t)];
        }
        const float v = static_cast<float>(static_cast<int32_t>(acc - xz[i] * colsum));
        const float sc = xs[i] * ws[j];
        ref[static_cast<size_t>(i * n + j)] = std::fma(v, sc, b[j]);
        ref_nb[static_cast<size_t>(i * n + j)] = v * sc;
      }
    std::vector<float> y(static_cast<size_t>(m * n) + 16);  // [M, N] and a guard zone
    for (const int threads : {1, 2}) {
      omp_set_num_threads(threads);
      for (const bool bias : {false, true}) {
        std::fill(y.begin(), y.end(), -12345.0f);
        g.forward(x.data(), m, bias ? b.data() : nullptr, y.data(), false);
        EXPECT_EQ(std::memcmp(y.data(), (bias ? ref : ref_nb).data(), sizeof(float) * ref.size()), 0)
            << int8_isa_name(GetParam()) << " m=" << m << " n=" << n << " k=" << k << " bias=" << bias
            << " threads=" << threads << ": max abs diff "
            << test::max_abs_diff(y.data(), (bias ? ref : ref_nb).data(), m * n);
        EXPECT_TRUE(std::all_of(y.begin() + m * n, y.end(), [](float v) { return v == -12345.0f; }))
            << "wrote past the output";
      }
      // GELU-tanh after the bias: the kernel's exp approximation against the double formula.
      g.forward(x.data(), m, b.data(), y.data(), true);
      double worst = 0;
      for (size_t i = 0; i < ref.size(); ++i)
        worst = std::max(worst, std::fabs(double{y[i]} - gelu_tanh(ref[i])) / std::max(1.0, std::fabs(double{ref[i]})));
      EXPECT_LE(worst, 1e-5) << int8_isa_name(GetParam()) << " m=" << m << " n=" << n << " k=" << k
                             << ": GELU max rel err " << worst;
    }
    omp_set_num_threads(omp_get_num_procs());
  }
}

TEST_P(Int8Kernel, CloseToTheFloatProduct) {
  // The quantisation error itself, on LayerNorm-like inputs (unit normal) and weights of the
  // models' scale: measured 1.12% of the output's RMS at K = 1920 (the RMS of the error over the
  // RMS of the output; each operand's rounding alone is ~1% of its RMS); asserted within 1.5x.
  const int64_t m = 50, n = 96, k = 1920;
  const auto x = test::random_vector(m * k, 41);         // [M, K]
  const auto w = test::random_vector(n * k, 42, 0.02f);  // [N, K]
  std::vector<int8_t> q(static_cast<size_t>(n * k));
  std::vector<float> ws(static_cast<size_t>(n));
  quantize_weights_int8(w.data(), n, k, q.data(), ws.data());
  const Int8Gemm g(q.data(), ws.data(), n, k, GetParam());
  std::vector<float> y(static_cast<size_t>(m * n)), ref(y.size());
  g.forward(x.data(), m, nullptr, y.data(), false);
  linear_reference(x.data(), m, w.data(), nullptr, n, k, ref.data(), Epilogue::none);
  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < y.size(); ++i)
    err2 += (y[i] - ref[i]) * double(y[i] - ref[i]), ref2 += ref[i] * double(ref[i]);
  const double rel = std::sqrt(err2 / ref2);
  std::printf("int8 vs f32 GEMM: relative RMS error %.4f%%\n", 100 * rel);
  EXPECT_LE(rel, 1.5 * 0.0112);
}

// The ymm kernel with either encoding, the zmm kernel, and the kernels' GELU: the same bits.
TEST_P(Int8Kernel, SameOutputAsTheZmmKernel) {
  if (!int8_isa_runs_here(Int8Isa::avx512vnni)) GTEST_SKIP() << missing(Int8Isa::avx512vnni);
  const int64_t m = 29, n = 200, k = 1030;
  const auto x = test::random_vector(m * k, 51);         // [M, K]
  const auto w = test::random_vector(n * k, 52, 0.05f);  // [N, K]
  const auto b = test::random_vector(n, 53);             // [N]
  std::vector<int8_t> q(static_cast<size_t>(n * k));
  std::vector<float> ws(static_cast<size_t>(n));
  quantize_weights_int8(w.data(), n, k, q.data(), ws.data());
  const Int8Gemm mine(q.data(), ws.data(), n, k, GetParam()), zmm(q.data(), ws.data(), n, k, Int8Isa::avx512vnni);
  std::vector<float> y(static_cast<size_t>(m * n)), ref(y.size());
  for (const bool gelu : {false, true}) {
    mine.forward(x.data(), m, b.data(), y.data(), gelu);
    zmm.forward(x.data(), m, b.data(), ref.data(), gelu);
    EXPECT_EQ(std::memcmp(y.data(), ref.data(), sizeof(float) * y.size()), 0)
        << int8_isa_name(GetParam()) << " gelu=" << gelu << ": max abs diff "
        << test::max_abs_diff(y.data(), ref.data(), m * n);
  }
}

INSTANTIATE_TEST_SUITE_P(Int8Kernels, Int8Kernel,
                         testing::Values(Int8Isa::avx512vnni, Int8Isa::avx512vnni_ymm, Int8Isa::avxvnni),
                         isa_test_name);
INSTANTIATE_TEST_SUITE_P(Int8Kernels, Int8Quantizer,
                         testing::Values(Int8Isa::none, Int8Isa::avx512vnni, Int8Isa::avx512vnni_ymm, Int8Isa::avxvnni),
                         isa_test_name);

TEST(Int8Gemm, RefusalNamesTheInstructionsAndTheWayOut) {
  const std::string why = int8_unsupported_reason(Int8Isa::none);
  EXPECT_NE(why.find("AVX512-VNNI"), std::string::npos) << why;
  EXPECT_NE(why.find("AVX-VNNI"), std::string::npos) << why;
  EXPECT_NE(why.find("--dtype bf16"), std::string::npos) << why;
  for (const Int8Isa isa : {Int8Isa::avx512vnni, Int8Isa::avxvnni, Int8Isa::avx512vnni_ymm})
    EXPECT_EQ(int8_unsupported_reason(isa), "");
}

// Without VARCODE_INT8_ISA: the zmm kernel where it runs, else the VEX ymm one, else none; never
// the EVEX ymm twin, which is for tests and timing. A kernel the CPU cannot run is refused.
TEST(Int8Gemm, DispatchPrefersTheZmmKernel) {
  if (std::getenv("VARCODE_INT8_ISA")) GTEST_SKIP() << "VARCODE_INT8_ISA is set";
  const Int8Isa expected = int8_isa_runs_here(Int8Isa::avx512vnni) ? Int8Isa::avx512vnni
                           : int8_isa_runs_here(Int8Isa::avxvnni)  ? Int8Isa::avxvnni
                                                                   : Int8Isa::none;
  EXPECT_EQ(int8_isa(), expected) << int8_isa_name(int8_isa());
  const std::vector<int8_t> q(16, 1);
  const std::vector<float> s(4, 1.0f);
  EXPECT_THROW(Int8Gemm(q.data(), s.data(), 4, 4, Int8Isa::none), Error);
  for (const Int8Isa isa : {Int8Isa::avx512vnni, Int8Isa::avxvnni, Int8Isa::avx512vnni_ymm})
    if (!int8_isa_runs_here(isa)) {
      EXPECT_THROW(Int8Gemm(q.data(), s.data(), 4, 4, isa), Error) << int8_isa_name(isa);
    } else {
      EXPECT_EQ(Int8Gemm(q.data(), s.data(), 4, 4, isa).isa(), isa);
    }
}

}  // namespace varcode::kernels::cpu
