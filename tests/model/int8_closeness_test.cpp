// The int8 compute path (ComputeDType::int8) against the f32 reference and the bf16 path on the
// tiny fixtures, and an int8 file (convert --dtype int8) against quantising on load (identical
// outputs). int8 keeps 8 bits per weight and per activation row, so the logits move by ~1e-3 of
// their spread and greedy tokens follow the reference's except at close calls; tolerances were
// measured (see the printed values) and are stated below as a multiple of what was measured.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "io/checkpoint.hpp"
#include "kernels/cpu/gemm_int8.hpp"
#include "test_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/io.hpp"
#include "varcode/model_info.hpp"

namespace varcode {

namespace {
// Measured on the tiny drafter (VAR, d4, 680 tokens): int8 against the f32 reference 7.0e-4 of
// the logits' spread, against bf16 7.3e-4; greedy tokens equal to the f32 reference's and to
// bf16's 0.9985 (2 of 1360). Asserted: 3x the error; agreement at least 0.99, ~7x the measured
// disagreement (a flipped token changes every later scale's input, so flips come in runs).
constexpr double kLogitRelTol = 3 * 7.3e-4;
constexpr double kTokenAgreement = 0.99;

double spread(const Tensor& t) {
  float lo = t.data<float>()[0], hi = lo;
  for (int64_t i = 0; i < t.numel(); ++i) lo = std::min(lo, t.data<float>()[i]), hi = std::max(hi, t.data<float>()[i]);
  return hi - lo;
}

double agreement(const Tensor& a, const Tensor& b) {
  int64_t same = 0;
  for (int64_t i = 0; i < a.numel(); ++i) same += a.data<int64_t>()[i] == b.data<int64_t>()[i];
  return static_cast<double>(same) / static_cast<double>(a.numel());
}

GenerateRequest greedy(std::vector<int> classes) {
  GenerateRequest req;
  req.classes = std::move(classes);
  SamplingOptions s;
  s.top_k = 1;
  s.top_p = 0;
  req.sampling = s;
  return req;
}

ModelFiles tiny_var() {
  ModelFiles files;
  files.vae = test::fixture("tiny/vae.pth");
  files.model = test::fixture("tiny/drafter.pth");
  return files;
}
}  // namespace

TEST(Int8Closeness, TeacherForcedLogitsAndGreedyTokens) {
  if (!kernels::cpu::Int8Gemm::supported()) GTEST_SKIP() << kernels::cpu::int8_unsupported_reason();
  Generator gen = Generator::open(tiny_var(), ComputeDType::int8);
  ASSERT_EQ(gen.compute_dtype(), DType::i8);
  Generator bf16 = Generator::open(tiny_var(), ComputeDType::bf16);
  Tensor tokens = load_npy(test::fixture("tiny/var_drafter_tokens.npy"));  // [2, L]
  Tensor first = Tensor::borrow(DType::i64, {1, tokens.dim(1)}, tokens.raw(), nullptr);
  Tensor got = gen.teacher_forced_logits(0, first, 207);                    // [1, L, V]
  Tensor want = load_npy(test::fixture("tiny/var_drafter_tf_logits.npy"));  // [1, L, V] f32 reference
  Tensor half = bf16.teacher_forced_logits(0, first, 207);                  // [1, L, V]
  const double rel = test::max_abs_diff(got.data<float>(), want.data<float>(), want.numel()) / spread(want);
  const double rel_bf16 = test::max_abs_diff(got.data<float>(), half.data<float>(), want.numel()) / spread(want);
  std::cerr << "int8 teacher-forced logits: max abs err / spread = " << rel << " against f32, " << rel_bf16
            << " against bf16\n";
  EXPECT_LE(rel, kLogitRelTol);
  EXPECT_LE(rel_bf16, kLogitRelTol);

  GenerateResult res = gen.generate(greedy({207, 980}));
  const double agree = agreement(res.tokens, tokens);
  const double agree_bf16 = agreement(res.tokens, bf16.generate(greedy({207, 980})).tokens);
  std::cerr << "int8 greedy tokens equal to the f32 reference's: " << agree << ", to bf16's: " << agree_bf16 << "\n";
  EXPECT_GE(agree, kTokenAgreement);
  EXPECT_GE(agree_bf16, kTokenAgreement);
  for (int64_t i = 0; i < res.images.numel(); ++i)
    ASSERT_TRUE(std::isfinite(res.images.data<float>()[i])) << "image element " << i;
}

TEST(Int8Closeness, ConvertedFileLoadsWithoutQuantisingAndRunsTheSame) {
  if (!kernels::cpu::Int8Gemm::supported()) GTEST_SKIP() << kernels::cpu::int8_unsupported_reason();
  // One folder per process: two test runs at once (a Release and a sanitizer build) must not
  // share the converted files.
  const std::string dir = ::testing::TempDir() + "/varcode_int8_convert." + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string drafter = dir + "/drafter_int8.safetensors", refiner = dir + "/refiner_int8.safetensors";
  convert_model(test::fixture("tiny/drafter.pth"), drafter, DType::i8);
  convert_model(test::fixture("tiny/refiner.pth"), refiner, DType::i8);
  // The file holds int8 linear weights with their scales; the head and embeddings as they were.
  io::Checkpoint ck = io::load_checkpoint(drafter);
  EXPECT_EQ(ck.tensor("blocks.0.ffn.fc1.weight").dtype(), DType::i8);
  EXPECT_EQ(ck.tensor("blocks.0.ffn.fc1.weight.scale").shape(), (Shape{ck.tensor("blocks.0.ffn.fc1.weight").dim(0)}));
  EXPECT_EQ(ck.tensor("blocks.0.ada_lin.1.weight").dtype(), DType::i8);
  EXPECT_EQ(ck.tensor("head.weight").dtype(), DType::f32);
  EXPECT_EQ(ck.tensor("word_embed.weight").dtype(), DType::f32);
  const ModelInfo info = inspect_model(drafter);
  EXPECT_EQ(info.dtype, "int8");
  EXPECT_EQ(info.params, inspect_model(test::fixture("tiny/drafter.pth")).params);

  ModelFiles pth;
  pth.vae = test::fixture("tiny/vae.pth");
  pth.drafter = test::fixture("tiny/drafter.pth");
  pth.refiner = test::fixture("tiny/refiner.pth");
  pth.draft_steps = 4;
  ModelFiles st = pth;
  st.drafter = drafter;
  st.refiner = refiner;
  const Generator on_load = Generator::open(pth, ComputeDType::int8),
                  from_file = Generator::open(st, ComputeDType::int8);
  GenerateRequest req;
  req.classes = {207, 980, 3};
  req.seed = 11;
  const GenerateResult a = on_load.generate(req), b = from_file.generate(req);
  ASSERT_EQ(a.tokens.shape(), b.tokens.shape());
  EXPECT_EQ(agreement(a.tokens, b.tokens), 1.0);
  EXPECT_EQ(test::max_abs_diff(a.images, b.images), 0.0);
  Tensor tokens = Tensor::borrow(DType::i64, {1, a.tokens.dim(1)}, a.tokens.raw(), nullptr);
  EXPECT_EQ(test::max_abs_diff(on_load.teacher_forced_logits(1, tokens, 207),
                               from_file.teacher_forced_logits(1, tokens, 207)),
            0.0);

  // Asked for bf16, an int8 file runs dequantised: close to bf16 from the .pth, as int8 is.
  const Generator deq = Generator::open(st, ComputeDType::bf16);
  Tensor want = load_npy(test::fixture("tiny/var_drafter_tf_logits.npy"));  // [1, L, V]
  Tensor ref_tokens = load_npy(test::fixture("tiny/var_drafter_tokens.npy"));
  Tensor first = Tensor::borrow(DType::i64, {1, ref_tokens.dim(1)}, ref_tokens.raw(), nullptr);
  const double rel = test::max_abs_diff(deq.teacher_forced_logits(0, first, 207), want) / spread(want);
  std::cerr << "int8 file run in bf16: teacher-forced logits max abs err / spread = " << rel << "\n";
  EXPECT_LE(rel, kLogitRelTol);
  std::filesystem::remove_all(dir);
}

TEST(Int8Closeness, AutoNeverPicksInt8) {
  const Generator gen = Generator::open(tiny_var(), ComputeDType::automatic);
  EXPECT_NE(gen.compute_dtype(), DType::i8);
}

}  // namespace varcode
