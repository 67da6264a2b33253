// The AVX512-BF16 GEMM (gemm_bf16.cpp, through Linear's avx512bf16 backend) against
// linear_reference over odd shapes: M, N and K tails, K odd, N below one 16-column group.
#include "kernels/cpu/gemm_bf16.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "kernels/cpu/gemm.hpp"
#include "test_util.hpp"
#include "kernels/reference/references.hpp"

namespace varcode::kernels::cpu {

namespace {
// x and W are rounded to bf16 before the reference sees them, so the products are exact on both
// sides and only the f32 accumulation order (and the GELU's exp approximation) differs; one bf16
// rounding of an input would show up as ~1e-2.
// The suite's tolerance rule (test_util.hpp) applied to the largest error measured here.
const double kTol = test::tolerance(3.9e-5);  // measured 3.8e-5, 2.4e-6 against oneDNN

std::vector<float> bf16_rounded(std::vector<float> v) {
  for (auto& x : v) x = bf16_to_f32(f32_to_bf16(x));
  return v;
}

void check_shape(int64_t m, int64_t n, int64_t k) {
  const auto x = bf16_rounded(test::random_vector(m * k, 11));        // [M, K]
  const auto w = bf16_rounded(test::random_vector(n * k, 12, 0.1f));  // [N, K]
  const auto b = test::random_vector(n, 13);                          // [N]
  Tensor wt = Tensor::borrow(DType::f32, {n, k}, w.data(), nullptr).to(DType::bf16);
  Tensor bt = Tensor::borrow(DType::f32, {n}, b.data(), nullptr);
  const Linear with_bias(wt, bt, GemmBackend::avx512bf16), no_bias(wt, Tensor(), GemmBackend::avx512bf16);
  ASSERT_EQ(with_bias.backend(), GemmBackend::avx512bf16);
  const size_t mn = static_cast<size_t>(m * n);
  // linear_reference's GELU is gelu_tanh of its plain output, so the two plain references give
  // all four expectations at the cost of two (slow, double) reference products.
  std::vector<float> ref_b(mn), ref_nb(mn);  // [M, N]
  std::vector<float> y(mn + 16);             // [M, N] and a guard zone the N-tail masks must not touch
  linear_reference(x.data(), m, w.data(), b.data(), n, k, ref_b.data(), Epilogue::none);
  linear_reference(x.data(), m, w.data(), nullptr, n, k, ref_nb.data(), Epilogue::none);
  for (const bool bias : {false, true})
    for (const Epilogue ep : {Epilogue::none, Epilogue::gelu_tanh}) {
      std::vector<float> ref = bias ? ref_b : ref_nb;
      if (ep == Epilogue::gelu_tanh)
        for (auto& v : ref) v = gelu_tanh(v);
      std::fill(y.begin(), y.end(), -12345.0f);
      (bias ? with_bias : no_bias).forward(x.data(), m, y.data(), ep);
      EXPECT_TRUE(std::all_of(y.begin() + static_cast<ptrdiff_t>(mn), y.end(), [](float v) { return v == -12345.0f; }))
          << "m=" << m << " n=" << n << " k=" << k << ": wrote past the output";
      const double err = test::max_abs_diff(y.data(), ref.data(), m * n);
      EXPECT_LE(err, kTol) << "m=" << m << " n=" << n << " k=" << k << " bias=" << bias
                           << " gelu=" << (ep == Epilogue::gelu_tanh) << ": max abs err " << err;
    }
}
}  // namespace

TEST(GemmBf16, MatchesReferenceOverOddShapes) {
  VARCODE_SKIP_UNLESS_CPU(Bf16Gemm::supported(), "CPU without AVX512-BF16");
  for (const int64_t m : {1, 3, 17, 64, 130})
    for (const int64_t n : {1, 15, 16, 33, 1024})
      for (const int64_t k : {1, 2, 31, 64, 1024}) check_shape(m, n, k);
  // K over several of the kernel's 1024-wide K blocks (partial sums through y), odd too.
  check_shape(7, 70, 2501);
  check_shape(130, 33, 4096);
}

TEST(GemmBf16, AgreesWithOneDnn) {
  VARCODE_SKIP_UNLESS_CPU(Bf16Gemm::supported(), "CPU without AVX512-BF16");
  // Unrounded inputs: both backends round x to bf16 the same way, so they stay close.
  const int64_t m = 37, n = 200, k = 333;
  const auto x = test::random_vector(m * k, 21);
  const auto w = test::random_vector(n * k, 22, 0.1f);
  const auto b = test::random_vector(n, 23);
  Tensor wt = Tensor::borrow(DType::f32, {n, k}, w.data(), nullptr).to(DType::bf16);
  Tensor bt = Tensor::borrow(DType::f32, {n}, b.data(), nullptr);
  const Linear ours(wt, bt, GemmBackend::avx512bf16), dnnl(wt, bt, GemmBackend::onednn);
  EXPECT_EQ(dnnl.backend(), GemmBackend::onednn);
  std::vector<float> a(static_cast<size_t>(m * n)), c(static_cast<size_t>(m * n));
  ours.forward(x.data(), m, a.data(), Epilogue::gelu_tanh);
  dnnl.forward(x.data(), m, c.data(), Epilogue::gelu_tanh);
  const double err = test::max_abs_diff(a.data(), c.data(), m * n);
  EXPECT_LE(err, kTol) << "max abs err " << err;
}

TEST(GemmBf16, RejectsF32Weights) {
  EXPECT_THROW(Linear(Tensor::zeros(DType::f32, {4, 3}), Tensor(), GemmBackend::avx512bf16), Error);
}

}  // namespace varcode::kernels::cpu
