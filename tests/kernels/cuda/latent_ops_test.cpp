// The CUDA latent-map ops against the CPU backend's: layout changes, PyTorch's bicubic and area
// resampling, and the elementwise updates, with shapes no block size divides and batches > 1.
//
// Tolerances: each GPU kernel runs the CPU kernel's float operations in its order, with the _rn
// intrinsics so that nvcc cannot fuse a product into a sum; the CPU (ISO C++ mode, GCC's
// -ffp-contract=off) does not fuse either, so the results should be the CPU's bits and the
// layout changes are compared for equality. The arithmetic ops are held to the bound of one
// rounding per operation (2^-24 of the magnitudes it adds), twice over, so that a compiler that
// fused on either side would still pass, while a wrong tap, index or weight (errors of the order of
// the values) fails by orders of magnitude. Each comparison prints what it measured.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "kernels/cuda/cuda_test_util.hpp"

namespace varcode::test {

namespace {

bool measuring() {
  const char* env = std::getenv("VARCODE_TEST_MEASURE");
  return env && std::string(env) == "1";
}
double derived(double bound) { return measuring() ? 0.0 : bound; }
const double kRound = std::ldexp(1.0, -24);  // one rounding of f32, relative

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, static_cast<double>(std::fabs(t.data<float>()[i])));
  return m;
}

void report(const std::string& what, double err, double bound) {
  std::cout << "[ measured ] " << what << ": max error " << err << " (bound " << bound << ")\n";
}

// y = op(x) on a backend: x uploaded, y [shape] allocated there, y brought back.
template <typename Op>
Tensor map_op(const backend::Backend& be, const Tensor& x, const Shape& y_shape, Op op) {
  const Tensor xd = be.to_device(x);          // [B, ...]
  Tensor yd = be.zeros(DType::f32, y_shape);  // y_shape
  op(be, xd, yd);
  return be.to_host(yd);
}

}  // namespace

TEST(CudaLatentOps, LayoutChangesAreExact) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const int64_t B = 3, C = 5, h = 5, w = 7;
  const Tensor tokens = random_tensor({B, h * w, C}, 1);  // [B, l, C]
  auto to_cm = [](const backend::Backend& be, const Tensor& x, Tensor& y) { be.to_channel_major(x, y); };
  EXPECT_EQ(max_abs_diff(map_op(*cpu(), tokens, {B, C, h, w}, to_cm), map_op(*gpu, tokens, {B, C, h, w}, to_cm)), 0.0);
  const Tensor maps = random_tensor({B, C, h, w}, 2);  // [B, C, h, w]
  auto to_tm = [](const backend::Backend& be, const Tensor& x, Tensor& y) { be.to_token_major(x, y); };
  EXPECT_EQ(max_abs_diff(map_op(*cpu(), maps, {B, h * w, C}, to_tm), map_op(*gpu, maps, {B, h * w, C}, to_tm)), 0.0);
  // And a shape whose output does not hold the input is refused.
  const Tensor xd = gpu->to_device(tokens);               // [B, l, C]
  Tensor bad = gpu->zeros(DType::f32, {B, C, h, w + 1});  // [B, C, h, w + 1]: one column too many
  EXPECT_THROW(gpu->to_channel_major(xd, bad), Error);
}

// Up (the quantizer's pn -> P, one pixel, odd sizes) and down (the contract allows it).
// Bound: each output is a 4-tap sum of 4-tap sums, 8 roundings of terms whose magnitudes add up to
// at most (sum |w|)^2 max|x| <= 1.9 max|x| (sum |w| <= 1.375 for A = -0.75): twice 8 * 2^-24 * 1.9
// max|x|, about 1.8e-6 max|x|.
TEST(CudaLatentOps, BicubicMatchesTheCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  struct Case {
    Shape in;
    int64_t out_h, out_w;
  };
  const std::vector<Case> cases = {
      {{2, 5, 3, 5}, 16, 13}, {{3, 2, 1, 1}, 7, 7}, {{2, 3, 9, 9}, 4, 6}, {{2, 32, 10, 10}, 16, 16}};
  auto op = [](const backend::Backend& be, const Tensor& x, Tensor& y) { be.bicubic_resize(x, y); };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    const Tensor x = random_tensor(c.in, seed++);  // [B, C, h, w]
    const Shape out = {c.in[0], c.in[1], c.out_h, c.out_w};
    const double err = max_abs_diff(map_op(*cpu(), x, out, op), map_op(*gpu, x, out, op));
    const double bound = 2 * 8 * kRound * 1.9 * max_abs(x);
    report("bicubic " + shape_str(c.in) + " -> " + shape_str(out), err, bound);
    EXPECT_LE(err, derived(bound)) << shape_str(c.in) << " -> " << shape_str(out);
  }
}

// Bound: a window's K values summed in order and divided twice: twice (K + 2) * 2^-24 * max|x|.
TEST(CudaLatentOps, AreaMatchesTheCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  struct Case {
    Shape in;
    int64_t out_h, out_w;
  };
  const std::vector<Case> cases = {
      {{2, 5, 16, 16}, 5, 7}, {{3, 2, 13, 11}, 13, 11}, {{2, 32, 16, 16}, 1, 1}, {{2, 3, 7, 9}, 3, 4}};
  auto op = [](const backend::Backend& be, const Tensor& x, Tensor& y) { be.area_resize(x, y); };
  uint32_t seed = 20;
  for (const Case& c : cases) {
    const Tensor x = random_tensor(c.in, seed++);  // [B, C, h, w]
    const Shape out = {c.in[0], c.in[1], c.out_h, c.out_w};
    const int64_t kh = (c.in[2] + c.out_h - 1) / c.out_h + 1, kw = (c.in[3] + c.out_w - 1) / c.out_w + 1;
    const double err = max_abs_diff(map_op(*cpu(), x, out, op), map_op(*gpu, x, out, op));
    const double bound = 2 * static_cast<double>(kh * kw + 2) * kRound * max_abs(x);
    report("area " + shape_str(c.in) + " -> " + shape_str(out), err, bound);
    EXPECT_LE(err, derived(bound)) << shape_str(c.in) << " -> " << shape_str(out);
  }
}

// Elementwise ops over a length no grid divides, in place (out aliasing an input) as the model
// calls them. Bound: two products and a sum (axpby, blend) or a sum and a product (add_mul): twice
// 2 * 2^-24 of the largest magnitude they add.
TEST(CudaLatentOps, ElementwiseOpsMatchTheCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const int64_t n = 100003;
  const Tensor x = random_tensor({n}, 30), y = random_tensor({n}, 31, 3.0f);  // [n]
  const double mx = max_abs(x), my = max_abs(y);

  auto axpby = [&](const backend::Backend& be) {
    Tensor xd = be.to_device(x), yd = be.to_device(y);                                // [n]
    be.axpby(0.37f, xd.data<float>(), -1.9f, yd.data<float>(), n, xd.data<float>());  // out = x
    return be.to_host(xd);
  };
  const double axpby_err = max_abs_diff(axpby(*cpu()), axpby(*gpu));
  const double axpby_bound = 2 * 2 * kRound * (0.37 * mx + 1.9 * my);
  report("axpby", axpby_err, axpby_bound);
  EXPECT_LE(axpby_err, derived(axpby_bound));

  auto add_mul = [&](const backend::Backend& be) {
    Tensor xd = be.to_device(x);                                    // [n]
    be.add_mul(xd.data<float>(), n, 1.0f, 0.5f, xd.data<float>());  // [-1, 1] -> [0, 1], in place
    Tensor out = be.zeros(DType::f32, {n});                         // [n]
    be.add_mul(xd.data<float>(), n, -0.3f, 2.7f, out.data<float>());
    return be.to_host(out);
  };
  const double add_mul_err = max_abs_diff(add_mul(*cpu()), add_mul(*gpu));
  const double add_mul_bound = 2 * 4 * kRound * 2.7 * ((mx + 1) * 0.5 + 0.3);
  report("add_mul", add_mul_err, add_mul_bound);
  EXPECT_LE(add_mul_err, derived(add_mul_bound));

  // blend: f_hat [B, C, PP] toward gt [C, PP] where keep [PP] is 1, partly at fractions.
  const int64_t B = 3, C = 5, PP = 37;
  const Tensor f_hat = random_tensor({B, C, PP}, 32), gt = random_tensor({C, PP}, 33);  // [B, C, PP], [C, PP]
  Tensor keep = Tensor::empty(DType::f32, {PP});                                        // [PP]
  for (int64_t p = 0; p < PP; ++p) keep.data<float>()[p] = p % 3 == 0 ? 1.0f : (p % 3 == 1 ? 0.0f : 0.3f);
  auto blend = [&](const backend::Backend& be) {
    Tensor fd = be.to_device(f_hat), gd = be.to_device(gt), kd = be.to_device(keep);  // [B, C, PP], [C, PP], [PP]
    be.blend(fd.data<float>(), gd.data<float>(), kd.data<float>(), B, C, PP);
    return be.to_host(fd);
  };
  const double blend_err = max_abs_diff(blend(*cpu()), blend(*gpu));
  const double blend_bound = 2 * 3 * kRound * (max_abs(f_hat) + max_abs(gt));
  report("blend", blend_err, blend_bound);
  EXPECT_LE(blend_err, derived(blend_bound));
}

}  // namespace varcode::test
