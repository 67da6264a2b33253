#include "kernels/cpu/adaln.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "kernels/reference/references.hpp"

namespace varcode::kernels::cpu {

TEST(AdaLn, ModulateMatchesReference) {
  const int64_t R = 3, l = 5, C = 96, stride = 6 * C;
  auto x = test::random_vector(R * l * C, 1, 3.0f);
  auto mod = test::random_vector(R * stride, 2);
  std::vector<float> out(x.size()), ref(x.size());
  adaln_modulate(x.data(), R, l, C, mod.data() + 2 * C, mod.data() + 4 * C, stride, out.data());
  adaln_modulate_reference(x.data(), R, l, C, mod.data() + 2 * C, mod.data() + 4 * C, stride, ref.data());
  const double err = test::max_abs_diff(out.data(), ref.data(), R * l * C);
  EXPECT_LE(err, 1e-5) << "max abs err " << err;
  // In place gives the same.
  adaln_modulate(x.data(), R, l, C, mod.data() + 2 * C, mod.data() + 4 * C, stride, x.data());
  EXPECT_LE(test::max_abs_diff(x.data(), ref.data(), R * l * C), 1e-5);
}

TEST(AdaLn, GatedResidual) {
  const int64_t R = 2, l = 3, C = 8;
  auto x = test::random_vector(R * l * C, 1);
  auto y = test::random_vector(R * l * C, 2);
  auto g = test::random_vector(R * 2 * C, 3);
  std::vector<float> ref = x;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t t = 0; t < l; ++t)
      for (int64_t c = 0; c < C; ++c) ref[static_cast<size_t>((r * l + t) * C + c)] += g[static_cast<size_t>(r * 2 * C + c)] * y[static_cast<size_t>((r * l + t) * C + c)];
  gated_residual_add(x.data(), y.data(), R, l, C, g.data(), 2 * C);
  EXPECT_LE(test::max_abs_diff(x.data(), ref.data(), R * l * C), 1e-6);
}

}  // namespace varcode::kernels::cpu
