// Per-image seeds, sampling settings and a per-request hand-over point (GenerateRequest::seeds,
// ::image_sampling, ::draft_steps): what lets `varcode serve` merge different clients' requests
// into one batch. An image must come out exactly as it does alone, whatever it is batched with.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/backend.hpp"
#include "kernels/cpu/sampling.hpp"
#include "shipped_models.hpp"
#include "test_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/io.hpp"

namespace varcode {

namespace {
ModelFiles tiny_pair(int n) {
  ModelFiles f;
  f.vae = test::fixture("tiny/vae.pth");
  f.drafter = test::fixture("tiny/drafter.pth");
  f.refiner = test::fixture("tiny/refiner.pth");
  f.draft_steps = n;
  return f;
}

SamplingOptions settings(double cfg, int top_k, double top_p, double t, bool smooth) {
  SamplingOptions s;
  s.cfg = cfg;
  s.top_k = top_k;
  s.top_p = top_p;
  s.temperature = {t};
  s.smooth = smooth;
  return s;
}

// Image b of a result, as the PNG bytes `varcode generate --out-dir` writes.
std::vector<uint8_t> png_of(const GenerateResult& r, int64_t b) {
  const int64_t S = r.images.dim(2), px = 3 * S * S;
  Tensor one = Tensor::empty(DType::f32, {3, S, S});  // [3, S, S]
  std::memcpy(one.data<float>(), r.images.data<float>() + b * px, sizeof(float) * static_cast<size_t>(px));
  return encode_png(one);
}

// Four images of four "clients": other classes, seeds, indices and every sampling setting.
struct Client {
  int cls;
  uint64_t seed;
  uint32_t index;
  SamplingOptions sampling;
};
std::vector<Client> clients() {
  return {{1, 7, 0, settings(1.5, 600, 0.96, 1.1, false)},
          {3, 123456789012345ULL, 2, settings(4.0, 50, 0.8, 0.7, false)},
          {1, 7, 1, settings(0.0, 0, 0.0, 1.3, true)},
          {9, 99, 0, settings(2.5, 1, 0.5, 1.0, false)}};
}

void expect_mixed_batch_equals_alone(const Generator& gen) {
  const std::vector<Client> cs = clients();
  GenerateRequest mixed;
  for (const Client& c : cs) {
    mixed.classes.push_back(c.cls);
    mixed.seeds.push_back(c.seed);
    mixed.image_indices.push_back(c.index);
    mixed.image_sampling.push_back(c.sampling);
  }
  GenerateResult together = gen.generate(mixed);  // one batch of 4
  const int64_t L = gen.total_tokens();
  for (size_t i = 0; i < cs.size(); ++i) {
    GenerateRequest alone;
    alone.classes = {cs[i].cls};
    alone.seed = cs[i].seed;
    alone.first_index = cs[i].index;
    alone.sampling = cs[i].sampling;
    GenerateResult r = gen.generate(alone);
    for (int64_t t = 0; t < L; ++t)
      ASSERT_EQ(r.tokens.data<int64_t>()[t], together.tokens.data<int64_t>()[static_cast<int64_t>(i) * L + t])
          << "image " << i << " token " << t;
    EXPECT_EQ(png_of(r, 0), png_of(together, static_cast<int64_t>(i))) << "image " << i << " PNG bytes";
  }
  // The settings really reach each row: images 0 and 2 share class, seed and the sampler's
  // stream but not the settings, and come out different.
  int same = 0;
  for (int64_t t = 0; t < L; ++t)
    same += together.tokens.data<int64_t>()[t] == together.tokens.data<int64_t>()[2 * L + t];
  EXPECT_LT(same, L);
}
}  // namespace

class PerImageGenerationDtype : public ::testing::TestWithParam<ComputeDType> {};

TEST_P(PerImageGenerationDtype, MixedBatchEqualsEachImageAloneFashion) {
  expect_mixed_batch_equals_alone(Generator::open(test::shipped_pair(3), GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PerImageGenerationDtype, ::testing::Values(ComputeDType::f32, ComputeDType::bf16));

// The 256 px schedule (10 scales) of the tiny fixtures, in bf16 (the GEMM and KV-cache paths of
// the official models).
TEST(PerImageGeneration, MixedBatchEqualsEachImageAloneTinyBf16) {
  expect_mixed_batch_equals_alone(Generator::open(tiny_pair(4), ComputeDType::bf16));
}

TEST(PerImageGeneration, SeedsAndSettingsOfOneValueEqualTheRequestWide) {
  Generator gen = Generator::open(test::shipped_pair(3), ComputeDType::f32);
  GenerateRequest wide;
  wide.classes = {0, 5, 7};
  wide.seed = 42;
  wide.sampling = settings(3.0, 100, 0.9, 0.9, false);
  GenerateRequest per = wide;
  per.sampling.reset();
  per.seed = 0;
  per.seeds.assign(3, 42);
  per.image_sampling.assign(3, *wide.sampling);
  GenerateResult a = gen.generate(wide), b = gen.generate(per);
  for (int64_t i = 0; i < a.tokens.numel(); ++i) ASSERT_EQ(a.tokens.data<int64_t>()[i], b.tokens.data<int64_t>()[i]);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(png_of(a, i), png_of(b, i));
}

TEST(PerImageGeneration, DraftStepsOverrideEqualsAPipelineOpenedWithIt) {
  Generator n3 = Generator::open(test::shipped_pair(3), ComputeDType::f32);
  ModelFiles f2 = test::shipped_pair(3);
  f2.draft_steps = 2;
  Generator n2 = Generator::open(f2, ComputeDType::f32);
  GenerateRequest req;
  req.classes = {4, 8};
  req.seed = 5;
  GenerateResult opened = n2.generate(req);
  req.draft_steps = 2;
  GenerateResult overridden = n3.generate(req);
  for (int64_t i = 0; i < opened.tokens.numel(); ++i)
    ASSERT_EQ(opened.tokens.data<int64_t>()[i], overridden.tokens.data<int64_t>()[i]) << "position " << i;
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(png_of(opened, i), png_of(overridden, i));
  req.draft_steps = 3;  // the pipeline's own value
  GenerateResult own = n3.generate(req);
  req.draft_steps = 0;
  GenerateResult dflt = n3.generate(req);
  for (int64_t i = 0; i < own.tokens.numel(); ++i)
    ASSERT_EQ(own.tokens.data<int64_t>()[i], dflt.tokens.data<int64_t>()[i]);
  // Another hand-over point changes the refined scales.
  int same = 0;
  for (int64_t i = 0; i < own.tokens.numel(); ++i)
    same += own.tokens.data<int64_t>()[i] == opened.tokens.data<int64_t>()[i];
  EXPECT_LT(same, own.tokens.numel());
}

TEST(PerImageSettings, BadPerImageInputIsAnError) {
  Generator gen = Generator::open(test::shipped_pair(3), ComputeDType::f32);
  GenerateRequest req;
  req.classes = {1, 2};
  req.seeds = {1};
  EXPECT_THROW(gen.generate(req), Error);
  req.seeds.clear();
  req.image_sampling = {settings(1.5, 600, 0.96, 1.0, false)};
  EXPECT_THROW(gen.generate(req), Error);
  req.image_sampling.assign(2, settings(1.5, 600, 1.5, 1.0, false));  // top_p out of range
  EXPECT_THROW(gen.generate(req), Error);
  req.image_sampling.clear();
  req.draft_steps = 6;  // the schedule has 6 scales: at most 5 drafted
  EXPECT_THROW(gen.generate(req), Error);
  req.draft_steps = -1;
  EXPECT_THROW(gen.generate(req), Error);
  Generator var = Generator::open(test::shipped_drafter(), ComputeDType::f32);
  req.draft_steps = 2;
  EXPECT_THROW(var.generate(req), Error);
}

TEST(PerImageSettings, CfgPerImageIsTheBatchWideArithmetic) {
  const int64_t B = 3, n = 5, V = 7;
  std::vector<float> logits = test::random_vector(2 * B * n * V, 11);  // [2B, n, V]
  const double t[3] = {0.25, 1.5, 3.0};
  std::vector<float> per(static_cast<size_t>(B * n * V));  // [B, n, V]
  std::vector<backend::ImageDraw> draws(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) draws[static_cast<size_t>(b)].cfg = t[b] / 0.5;
  backend::cpu_backend()->cfg(logits.data(), B, n, V, draws.data(), 0.5, per.data());  // t_b = cfg_b * ratio
  for (int64_t b = 0; b < B; ++b) {
    std::vector<float> wide(static_cast<size_t>(B * n * V));  // [B, n, V]
    kernels::cpu::apply_cfg(logits.data(), B, n, V, t[b], wide.data());
    for (int64_t i = b * n * V; i < (b + 1) * n * V; ++i)
      ASSERT_EQ(per[static_cast<size_t>(i)], wide[static_cast<size_t>(i)]) << "image " << b << " element " << i;
  }
}

}  // namespace varcode
