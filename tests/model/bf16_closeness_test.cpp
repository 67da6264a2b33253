// The bf16 compute path stays close to the f32 reference on the tiny fixtures. Tolerances were
// measured (see the printed values) and set with margin; bf16 keeps 8 mantissa bits, so logits
// move by ~1e-2 of their spread and greedy decoding may flip the rare close call.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/io.hpp"

namespace varcode {

namespace {
// max |bf16 - f32| / (max - min of the f32 logits), by the suite's tolerance rule (test_util.hpp)
const double kLogitRelTol = test::tolerance(1.5e-4);  // measured 1.46e-4
constexpr double kTokenAgreement = 0.99;              // greedy tokens equal to the f32 reference's; measured 1.0
}  // namespace

TEST(Bf16Closeness, TeacherForcedLogitsAndGreedyTokens) {
  ModelFiles files;
  files.vae = test::fixture("tiny/vae.pth");
  files.model = test::fixture("tiny/drafter.pth");
  Generator gen = Generator::open(files, ComputeDType::bf16);
  ASSERT_EQ(gen.compute_dtype(), DType::bf16);
  Tensor tokens = load_npy(test::fixture("tiny/var_drafter_tokens.npy"));  // [2, L]
  Tensor first = Tensor::borrow(DType::i64, {1, tokens.dim(1)}, tokens.raw(), nullptr);
  Tensor got = gen.teacher_forced_logits(0, first, 207);  // [1, L, V]
  Tensor want = load_npy(test::fixture("tiny/var_drafter_tf_logits.npy"));
  float lo = want.data<float>()[0], hi = lo;
  for (int64_t i = 0; i < want.numel(); ++i) {
    lo = std::min(lo, want.data<float>()[i]);
    hi = std::max(hi, want.data<float>()[i]);
  }
  const double rel = test::max_abs_diff(got.data<float>(), want.data<float>(), want.numel()) / (hi - lo);
  std::cerr << "bf16 teacher-forced logits: max abs err / spread = " << rel << "\n";
  EXPECT_LE(rel, kLogitRelTol);

  GenerateRequest req;
  req.classes = {207, 980};
  SamplingOptions s;
  s.top_k = 1;
  s.top_p = 0;
  req.sampling = s;
  GenerateResult res = gen.generate(req);
  int64_t same = 0;
  for (int64_t i = 0; i < tokens.numel(); ++i) same += res.tokens.data<int64_t>()[i] == tokens.data<int64_t>()[i];
  const double agreement = static_cast<double>(same) / static_cast<double>(tokens.numel());
  std::cerr << "bf16 greedy tokens equal to the f32 reference: " << agreement << "\n";
  EXPECT_GE(agreement, kTokenAgreement);
}

}  // namespace varcode
