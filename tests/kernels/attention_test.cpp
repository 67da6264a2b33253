#include "kernels/cpu/attention.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace varcode::kernels::cpu {

// Three "scales" (4, 9 then 25 tokens) of 2 rows x 3 heads: the fast kernel against the reference,
// the second scale attending to the cache of the first.
TEST(Attention, CachedBlockCausalMatchesReference) {
  const int64_t R = 2, H = 3, C = H * 64, cap = 4 + 9 + 25 + 3;  // spare capacity as in the KV cache
  auto scale_mul = test::random_vector(H, 7);
  scale_mul[0] = 9.0f;  // exercises the clamp at ln 100
  std::vector<float> k1(static_cast<size_t>(R * H * cap * 64)), v1(k1.size()), k2(k1.size()), v2(k1.size());
  KvView fast{k1.data(), v1.data(), R, H, cap}, ref{k2.data(), v2.data(), R, H, cap};
  int64_t p0 = 0;
  for (int64_t l : {4, 9, 25}) {  // 25: keys beyond one 16-wide block and a tail
    auto qkv = test::random_vector(R * l * 3 * C, static_cast<uint32_t>(l));
    std::vector<int> limit(static_cast<size_t>(l), static_cast<int>(p0 + l));
    std::vector<float> a(static_cast<size_t>(R * l * C)), b(a.size());
    l2norm_attention(qkv.data(), l, p0, scale_mul.data(), limit.data(), fast, a.data());
    l2norm_attention_reference(qkv.data(), l, p0, scale_mul.data(), limit.data(), ref, b.data());
    const double err = test::max_abs_diff(a.data(), b.data(), R * l * C);
    EXPECT_LE(err, 5e-5) << "l=" << l << " max abs err " << err;  // f32 vs a double reference
    p0 += l;
  }
}

}  // namespace varcode::kernels::cpu
