#include "kernels/cpu/gemm.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "kernels/reference/references.hpp"

namespace varcode::kernels::cpu {

namespace {
// The suite's tolerance rule (test_util.hpp) applied to the largest error measured here.
const double kTol = test::tolerance(1.9e-6);  // measured 1.9e-6

void check_linear(int64_t m, int64_t n, int64_t k, Epilogue ep) {
  auto x = test::random_vector(m * k, 1);
  auto w = test::random_vector(n * k, 2, 0.1f);
  auto b = test::random_vector(n, 3);
  Tensor wt = Tensor::borrow(DType::f32, {n, k}, w.data(), nullptr);
  Tensor bt = Tensor::borrow(DType::f32, {n}, b.data(), nullptr);
  Linear lin(wt, bt);
  std::vector<float> y(static_cast<size_t>(m * n)), ref(static_cast<size_t>(m * n));
  lin.forward(x.data(), m, y.data(), ep);
  linear_reference(x.data(), m, w.data(), b.data(), n, k, ref.data(), ep);
  const double err = test::max_abs_diff(y.data(), ref.data(), m * n);
  EXPECT_LE(err, kTol) << "m=" << m << " n=" << n << " k=" << k << " max abs err " << err;
}
}  // namespace

TEST(Gemm, LinearMatchesReference) {
  check_linear(1, 7, 5, Epilogue::none);
  check_linear(2, 64, 48, Epilogue::none);
  check_linear(13, 96, 64, Epilogue::gelu_tanh);
  check_linear(37, 33, 129, Epilogue::gelu_tanh);
}

TEST(Gemm, Bf16WeightsStayClose) {
  const int64_t m = 5, n = 40, k = 64;
  auto x = test::random_vector(m * k, 4);
  auto w = test::random_vector(n * k, 5, 0.1f);
  Tensor wt = Tensor::borrow(DType::f32, {n, k}, w.data(), nullptr);
  Linear f32(wt, Tensor());
  Linear bf16(wt.to(DType::bf16), Tensor());
  std::vector<float> a(static_cast<size_t>(m * n)), b(static_cast<size_t>(m * n));
  f32.forward(x.data(), m, a.data());
  bf16.forward(x.data(), m, b.data());
  const double err = test::max_abs_diff(a.data(), b.data(), m * n);
  EXPECT_LE(err, 0.1) << "max abs err " << err;
  EXPECT_GT(err, 0.0);  // it really ran in bf16
}

TEST(Gemm, RejectsBadShapes) {
  Tensor w = Tensor::zeros(DType::f32, {4, 3});
  EXPECT_THROW(Linear(w, Tensor::zeros(DType::f32, {5})), Error);
  EXPECT_THROW(Linear(Tensor::zeros(DType::f32, {4}), Tensor()), Error);
}

}  // namespace varcode::kernels::cpu
