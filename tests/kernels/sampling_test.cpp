#include "kernels/cpu/sampling.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/reference/sampling.hpp"

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

// The bucketed top-p against the naive full sort: the same survivors and the same token, over
// vocabularies, spreads, ties (logits on a coarse grid), top-k / top-p / temperature settings,
// including top-p so small that only the largest stays and top-k = 1 with tied maxima.
TEST(Sampler, MatchesTheNaiveReference) {
  std::mt19937 gen(2026);
  int cases = 0, kept_total = 0;
  for (int vocab : {7, 64, 1024, 4096})
    for (float spread : {0.3f, 2.5f, 8.0f})
      for (bool ties : {false, true})
        for (const FilterParams fp : {FilterParams{0, 0.96, 1.0}, FilterParams{600, 0.96, 1.0},
                                      FilterParams{900, 0.8, 1.1}, FilterParams{1, 0.96, 1.0},
                                      FilterParams{0, 1e-9, 0.7}, FilterParams{5, 0.0, 1.0}, FilterParams{0, 0.5, 1.0}})
          for (int rep = 0; rep < 6; ++rep) {
            std::normal_distribution<float> normal(0.0f, spread);
            std::vector<float> l(static_cast<size_t>(vocab));
            for (float& x : l) x = ties ? std::round(normal(gen) * 2) / 2 : normal(gen);
            if (rep == 5) std::fill(l.begin(), l.end(), 1.5f);  // every logit tied
            std::vector<float> a = l, b = l;
            filter_logits(a.data(), vocab, fp.top_k, fp.top_p);
            filter_logits_reference(b.data(), vocab, fp.top_k, fp.top_p);
            ASSERT_EQ(a, b) << "V " << vocab << " spread " << spread << " ties " << ties << " top-k " << fp.top_k
                            << " top-p " << fp.top_p << " rep " << rep;
            for (float x : a) kept_total += x != kNegInf;
            for (double u : {0.0, 0.013, 0.37, 0.5, 0.91, 0.999999}) {
              std::vector<float> c = l, d = l;
              ASSERT_EQ(sample_token(c.data(), vocab, fp, u), sample_token_reference(d.data(), vocab, fp, u))
                  << "V " << vocab << " u " << u << " top-k " << fp.top_k << " top-p " << fp.top_p;
            }
            ++cases;
          }
  EXPECT_EQ(cases, 4 * 3 * 2 * 7 * 6);
  EXPECT_GT(kept_total, 0);
}

// A broken head (overflowed or NaN logits) must still give a token of the vocabulary, never an
// undefined float-to-int conversion in the bucketing (UBSan runs this).
TEST(Sampler, NonFiniteLogitsGiveATokenInRange) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (const std::vector<float>& l :
       {std::vector<float>{1, inf, 2, 3, -1}, std::vector<float>{1, nan, 2, 3, -1},
        std::vector<float>{inf, inf, -inf, 0, 0}, std::vector<float>{nan, nan, nan, nan, nan}})
    for (const FilterParams fp : {FilterParams{0, 0.96, 1.0}, FilterParams{3, 0.96, 1.0}, FilterParams{2, 0.0, 1.0}}) {
      std::vector<float> c = l;
      const int t = sample_token(c.data(), 5, fp, 0.5);
      EXPECT_GE(t, 0);
      EXPECT_LT(t, 5);
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
