#include "kernels/cpu/sampling.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace varcode::kernels::cpu {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}

TEST(Sampler, TopKKeepsTies) {
  std::vector<float> l{1, 5, 3, 5, 2, 3};
  filter_logits(l.data(), 6, 3, 0);  // 3rd largest is 3: both 3s stay
  EXPECT_EQ(l, (std::vector<float>{kNegInf, 5, 3, 5, kNegInf, 3}));
  std::vector<float> g{1, 5, 3, 4};
  filter_logits(g.data(), 4, 1, 0);
  EXPECT_EQ(g, (std::vector<float>{kNegInf, 5, kNegInf, kNegInf}));
}

TEST(Sampler, TopPRemovesTheLowTail) {
  // probs = softmax(log([0.1, 0.2, 0.3, 0.4])): ascending cumsum 0.1, 0.3, 0.6, 1.0.
  std::vector<float> l{std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  std::vector<float> a = l;
  filter_logits(a.data(), 4, 0, 0.75);  // remove cumsum <= 0.25: only 0.1
  EXPECT_EQ(a[0], kNegInf);
  EXPECT_NE(a[1], kNegInf);
  std::vector<float> b = l;
  filter_logits(b.data(), 4, 0, 0.5);  // remove <= 0.5: 0.1 and 0.2 (0.3 cumsum)
  EXPECT_EQ(b[0], kNegInf);
  EXPECT_EQ(b[1], kNegInf);
  EXPECT_NE(b[2], kNegInf);
  std::vector<float> c = l;
  filter_logits(c.data(), 4, 0, 1e-9);  // everything but the largest
  EXPECT_EQ(c[2], kNegInf);
  EXPECT_NE(c[3], kNegInf);
}

TEST(Sampler, TopKThenTopP) {
  std::vector<float> l{0, 1, 2, 3};
  filter_logits(l.data(), 4, 2, 0.5);  // top-2 {2, 3}, then the smaller of them has p = 0.27 <= 0.5
  EXPECT_EQ(l, (std::vector<float>{kNegInf, kNegInf, kNegInf, 3}));
}

TEST(Sampler, GreedyIsArgmax) {
  std::vector<float> l{0.3f, 2.0f, -1.0f, 1.9f};
  for (double u : {0.0, 0.5, 0.999999}) {
    std::vector<float> c = l;
    EXPECT_EQ(sample_token(c.data(), 4, FilterParams{1, 0, 1.0}, u), 1);
  }
}

TEST(Sampler, EmpiricalDistributionMatchesFilteredSoftmax) {
  const int V = 16;
  std::vector<float> l(V);
  for (int i = 0; i < V; ++i) l[static_cast<size_t>(i)] = std::sin(static_cast<float>(i)) * 2;
  const FilterParams fp{10, 0.9, 1.3};
  const auto p = sampling_distribution(l.data(), V, fp);
  CounterRng rng{1234};
  const int n = 200000;
  std::vector<int> counts(V, 0);
  for (int i = 0; i < n; ++i) {
    std::vector<float> c = l;
    ++counts[static_cast<size_t>(sample_token(c.data(), V, fp, rng.uniform(0, 0, static_cast<uint32_t>(i), 0)))];
  }
  for (int v = 0; v < V; ++v) {
    const double f = static_cast<double>(counts[static_cast<size_t>(v)]) / n;
    const double sd = std::sqrt(p[static_cast<size_t>(v)] * (1 - p[static_cast<size_t>(v)]) / n);
    EXPECT_NEAR(f, p[static_cast<size_t>(v)], 5 * sd + 1e-9) << "token " << v;
    if (p[static_cast<size_t>(v)] == 0) {
      EXPECT_EQ(counts[static_cast<size_t>(v)], 0);
    }
  }
}

TEST(Sampler, CounterRngIsAPureFunctionOfItsKey) {
  CounterRng a{42}, b{42}, c{43};
  EXPECT_EQ(a.uniform(1, 2, 3, 0), b.uniform(1, 2, 3, 0));
  EXPECT_NE(a.uniform(1, 2, 3, 0), c.uniform(1, 2, 3, 0));
  EXPECT_NE(a.uniform(1, 2, 3, 0), a.uniform(1, 2, 4, 0));
  EXPECT_NE(a.uniform(1, 2, 3, 0), a.uniform(2, 2, 3, 0));
  double sum = 0;
  for (uint32_t i = 0; i < 10000; ++i) {
    double u = a.uniform(0, 0, i, 0);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.01);
}

TEST(Sampler, Cfg) {
  std::vector<float> logits{1, 2, 3, 4};  // [2B=2, 1, V=2]
  std::vector<float> out(2);
  apply_cfg(logits.data(), 1, 1, 2, 0.5, out.data());
  EXPECT_FLOAT_EQ(out[0], 1.5f * 1 - 0.5f * 3);
  EXPECT_FLOAT_EQ(out[1], 1.5f * 2 - 0.5f * 4);
}

}  // namespace varcode::kernels::cpu

namespace varcode::kernels::cpu {

// Random123's published known-answer vectors for Philox4x32-10 (tests/kat_vectors of the
// reference distribution of Salmon et al., SC'11: counter words, key words, output words).
TEST(Philox, KnownAnswerVectors) {
  struct Kat {
    uint32_t counter[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
      {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
       {0xffffffffu, 0xffffffffu},
       {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
      {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
       {0xa4093822u, 0x299f31d0u},
       {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
  };
  for (const Kat& k : kats) {
    uint32_t out[4];
    CounterRng::philox(k.counter, k.key, out);
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(out[i], k.out[i]) << "word " << i << " for counter " << std::hex << k.counter[0];
  }
}

}  // namespace varcode::kernels::cpu
