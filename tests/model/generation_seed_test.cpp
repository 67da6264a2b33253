// Seeds: an image depends only on (seed, its index, the sampling settings), never on the batch it
// was made in; and training-free CoDe draws on its drafted scales exactly what the drafter draws
// alone.
#include <gtest/gtest.h>

#include "sampling_presets.hpp"
#include "test_util.hpp"
#include "varcode/generator.hpp"

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

}  // namespace

class GenerationSeedDtype : public ::testing::TestWithParam<ComputeDType> {};

TEST_P(GenerationSeedDtype, ImageIndependentOfBatchAndCompanions) {
  Generator gen = Generator::open(tiny_pair(4), GetParam());
  GenerateRequest all;
  all.classes = {207, 980, 1, 33};
  all.seed = 7;
  all.sampling = test::code_sampling();
  GenerateResult a = gen.generate(all);  // one batch of 4
  all.batch = 1;
  GenerateResult b = gen.generate(all);  // four batches of 1
  const int64_t L = gen.total_tokens();
  for (int64_t i = 0; i < 4 * L; ++i)
    ASSERT_EQ(a.tokens.data<int64_t>()[i], b.tokens.data<int64_t>()[i]) << "position " << i;
  // Image 2 alone, asked for with its index, is the same picture.
  GenerateRequest one;
  one.classes = {1};
  one.seed = 7;
  one.first_index = 2;
  one.sampling = test::code_sampling();
  GenerateResult c = gen.generate(one);
  for (int64_t t = 0; t < L; ++t)
    ASSERT_EQ(c.tokens.data<int64_t>()[t], a.tokens.data<int64_t>()[2 * L + t]) << "token " << t;
  const int64_t px = 3 * gen.image_size() * gen.image_size();
  EXPECT_LE(test::max_abs_diff(c.images.data<float>(), a.images.data<float>() + 2 * px, px), 1e-5);
  // Another seed gives another picture.
  one.seed = 8;
  GenerateResult d = gen.generate(one);
  int same = 0;
  for (int64_t t = 0; t < L; ++t) same += d.tokens.data<int64_t>()[t] == c.tokens.data<int64_t>()[t];
  EXPECT_LT(same, L / 2);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GenerationSeedDtype, ::testing::Values(ComputeDType::f32, ComputeDType::bf16));

TEST(GenerationSeed, CodeDraftsWhatTheDrafterDrawsAlone) {
  const int N = 6;
  Generator code = Generator::open(tiny_pair(N), ComputeDType::f32);
  ModelFiles single;
  single.vae = test::fixture("tiny/vae.pth");
  single.model = test::fixture("tiny/drafter.pth");
  Generator var = Generator::open(single, ComputeDType::f32);
  GenerateRequest req;
  req.classes = {207, 980};
  req.seed = 123;
  req.sampling = test::code_sampling();
  GenerateResult a = code.generate(req);
  GenerateResult b = var.generate(req);
  const int64_t L = code.total_tokens();
  std::vector<int> pn = code.patch_nums();
  int64_t drafted = 0;
  for (int si = 0; si < N; ++si) drafted += pn[static_cast<size_t>(si)] * pn[static_cast<size_t>(si)];
  for (int64_t img = 0; img < 2; ++img)
    for (int64_t t = 0; t < drafted; ++t)
      ASSERT_EQ(a.tokens.data<int64_t>()[img * L + t], b.tokens.data<int64_t>()[img * L + t])
          << "image " << img << " token " << t;
  // The refined scales come from another model: they differ.
  int differ = 0;
  for (int64_t t = drafted; t < L; ++t) differ += a.tokens.data<int64_t>()[t] != b.tokens.data<int64_t>()[t];
  EXPECT_GT(differ, 0);
}

TEST(GenerationSeed, RejectsBadRequests) {
  Generator gen = Generator::open(tiny_pair(4), ComputeDType::f32);
  GenerateRequest req;
  req.classes = {1000};
  EXPECT_THROW(gen.generate(req), Error);
  req.classes = {};
  EXPECT_THROW(gen.generate(req), Error);
  req.classes = {1};
  SamplingOptions s = gen.default_sampling();
  s.temperature = {1.0, 1.0, 1.0};
  req.sampling = s;
  EXPECT_THROW(gen.generate(req), Error);
  EXPECT_THROW(Generator::open(tiny_pair(0), ComputeDType::f32), Error);
  EXPECT_THROW(Generator::open(tiny_pair(10), ComputeDType::f32), Error);
  ModelFiles swapped = tiny_pair(4);
  swapped.vae = test::fixture("tiny/drafter.pth");
  EXPECT_THROW(Generator::open(swapped, ComputeDType::f32), Error);
  ModelFiles vae_as_model;
  vae_as_model.vae = test::fixture("tiny/vae.pth");
  vae_as_model.model = test::fixture("tiny/vae.pth");
  EXPECT_THROW(Generator::open(vae_as_model, ComputeDType::f32), Error);
}

TEST(GenerationSeed, CancellationStopsTheRun) {
  Generator gen = Generator::open(tiny_pair(4), ComputeDType::f32);
  GenerateRequest req;
  req.classes = {1};
  std::atomic<bool> cancel{false};
  int events = 0;
  auto progress = [&](const ProgressEvent&) {
    if (++events == 3) cancel = true;
  };
  EXPECT_THROW(gen.generate(req, progress, &cancel), Error);
  EXPECT_EQ(events, 3);
}

}  // namespace varcode
