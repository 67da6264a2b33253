// The AVX-512F GEMM (gemm_f32.cpp, through Linear's avx512f32 backend) against linear_reference
// over odd shapes: every M tail of the 6-row micro-tile, N tails of the 16-column groups and the
// 64-column panels, odd K and K over one or several of the kernel's K blocks.
#include "kernels/cpu/gemm_f32.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "kernels/cpu/gemm.hpp"
#include "test_util.hpp"
#include "kernels/reference/references.hpp"

namespace varcode::kernels::cpu {

namespace {
// Outputs are at most ~10 in magnitude here and the kernel differs from the double reference only
// by f32 accumulation order and rounding (and the GELU's exp approximation, ~2 ulp): ~1e-5 at
// K = 4096; one dropped or doubled product shows as ~1e-2 and up.
// The suite's tolerance rule (test_util.hpp) applied to the largest error measured here.
const double kTol = test::tolerance(4.9e-5);  // measured 4.9e-5 (K = 4096), 6.2e-6 against oneDNN

void check_shape(int64_t m, int64_t n, int64_t k) {
  const auto x = test::random_vector(m * k, 11);        // [M, K]
  const auto w = test::random_vector(n * k, 12, 0.1f);  // [N, K]
  const auto b = test::random_vector(n, 13);            // [N]
  Tensor wt = Tensor::borrow(DType::f32, {n, k}, w.data(), nullptr);
  Tensor bt = Tensor::borrow(DType::f32, {n}, b.data(), nullptr);
  const Linear with_bias(wt, bt, GemmBackend::avx512f32), no_bias(wt, Tensor(), GemmBackend::avx512f32);
  ASSERT_EQ(with_bias.backend(), GemmBackend::avx512f32);
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

TEST(GemmF32, MatchesReferenceOverOddShapes) {
  VARCODE_SKIP_UNLESS_CPU(F32Gemm::supported(), "CPU without AVX-512F");
  for (int64_t m = 1; m <= 13; ++m)
    for (const int64_t n : {1, 15, 16, 17, 33, 64, 65, 130})
      for (const int64_t k : {1, 2, 7, 31, 64, 1025}) check_shape(m, n, k);
  // Taller and wider: row blocks of unequal height, row chunks shared out between threads.
  for (const int64_t m : {64, 169})
    for (const int64_t n : {33, 1024})
      for (const int64_t k : {1, 64, 1024}) check_shape(m, n, k);
  // K over several of the kernel's 1024-deep K blocks (partial sums through y), odd too.
  check_shape(7, 70, 2501);
  check_shape(130, 33, 4096);
}

TEST(GemmF32, AgreesWithOneDnn) {
  VARCODE_SKIP_UNLESS_CPU(F32Gemm::supported(), "CPU without AVX-512F");
  const int64_t m = 37, n = 200, k = 333;
  const auto x = test::random_vector(m * k, 21);        // [M, K]
  const auto w = test::random_vector(n * k, 22, 0.1f);  // [N, K]
  const auto b = test::random_vector(n, 23);            // [N]
  Tensor wt = Tensor::borrow(DType::f32, {n, k}, w.data(), nullptr);
  Tensor bt = Tensor::borrow(DType::f32, {n}, b.data(), nullptr);
  const Linear ours(wt, bt, GemmBackend::avx512f32), dnnl(wt, bt, GemmBackend::onednn);
  EXPECT_EQ(dnnl.backend(), GemmBackend::onednn);
  std::vector<float> a(static_cast<size_t>(m * n)), c(static_cast<size_t>(m * n));  // [M, N]
  ours.forward(x.data(), m, a.data(), Epilogue::gelu_tanh);
  dnnl.forward(x.data(), m, c.data(), Epilogue::gelu_tanh);
  const double err = test::max_abs_diff(a.data(), c.data(), m * n);
  EXPECT_LE(err, kTol) << "max abs err " << err;
}

TEST(GemmF32, RejectsBf16Weights) {
  EXPECT_THROW(Linear(Tensor::zeros(DType::f32, {4, 3}).to(DType::bf16), Tensor(), GemmBackend::avx512f32), Error);
}

}  // namespace varcode::kernels::cpu
