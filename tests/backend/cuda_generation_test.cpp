// End to end on a GPU, with the CPU backend as the reference on the same machine (it is the one
// proven against the fixtures): the shipped models and official-size random weights, f32 and bf16,
// and the seed properties users rely on. Skips, saying why, where no GPU can run the CUDA backend;
// scripts/gpu-check.sh makes a skip a failure (VARCODE_REQUIRE_GPU=1).
//
// Tolerances are the (f32 images within 1e-4, identical greedy tokens) or derived from the
// CPU's own bf16-vs-f32 closeness; gpu-check.sh also runs VARCODE_TEST_MEASURE=1 to print the
// measured errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cuda/cuda_test_util.hpp"
#include "sampling_presets.hpp"
#include "shipped_models.hpp"
#include "varcode/generator.hpp"
#include "varcode/vqvae.hpp"

namespace varcode {
namespace {

using test::shipped_drafter;
using test::shipped_pair;

Device first_gpu() {
  const char* idx = std::getenv("VARCODE_TEST_GPU");
  return {DeviceType::cuda, idx ? std::atoi(idx) : 0};
}

int64_t differing_tokens(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return a.numel() + b.numel();
  int64_t n = 0;
  for (int64_t i = 0; i < a.numel(); ++i) n += a.data<int64_t>()[i] != b.data<int64_t>()[i];
  return n;
}

// Images whose tokens differ at all (once one token differs, the later scales see another image).
int images_differing(const Tensor& a, const Tensor& b) {
  const int64_t B = a.dim(0), L = a.dim(1);
  int n = 0;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t < L; ++t)
      if (a.data<int64_t>()[i * L + t] != b.data<int64_t>()[i * L + t]) {
        ++n;
        break;
      }
  return n;
}

#define VARCODE_GPU_OR_SKIP()                                                \
  do {                                                                       \
    const std::string why_ = cuda_unavailable_reason(first_gpu().index);     \
    if (!why_.empty()) {                                                     \
      if (test::gpu_required()) FAIL() << "VARCODE_REQUIRE_GPU=1: " << why_; \
      GTEST_SKIP() << "no CUDA GPU: " << why_;                               \
    }                                                                        \
  } while (0)

TEST(CudaGeneration, F32GreedyTokensAndImagesMatchTheCpu) {
  VARCODE_GPU_OR_SKIP();
  for (const ModelFiles& files : {shipped_pair(3), shipped_drafter()}) {
    Generator cpu = Generator::open(files, ComputeDType::f32, Device{});
    Generator gpu = Generator::open(files, ComputeDType::f32, first_gpu());
    EXPECT_EQ(gpu.device(), first_gpu());
    GenerateRequest req;
    req.classes = {0, 3, 7, 9};
    req.seed = 11;
    req.sampling = test::greedy_sampling();
    const GenerateResult a = cpu.generate(req), b = gpu.generate(req);
    EXPECT_EQ(differing_tokens(a.tokens, b.tokens), 0);
    EXPECT_EQ(b.images.device(), Device{});
    const double err = test::max_abs_diff(a.images, b.images);
    EXPECT_LE(err, 1e-4) << "f32 images, GPU against CPU";  // the bound for f32
  }
}

TEST(CudaGeneration, F32SampledImagesMatchTheCpuButForRareBoundaryDraws) {
  VARCODE_GPU_OR_SKIP();
  Generator cpu = Generator::open(shipped_pair(3), ComputeDType::f32, Device{});
  Generator gpu = Generator::open(shipped_pair(3), ComputeDType::f32, first_gpu());
  GenerateRequest req;
  for (int i = 0; i < 40; ++i) req.classes.push_back(i % 10);
  req.seed = 2026;
  req.sampling = test::code_sampling();
  const GenerateResult a = cpu.generate(req), b = gpu.generate(req);
  // The same draws on both devices: an image differs only where a uniform lands within f32
  // rounding (~1e-6 of the logits' scale) of a CDF boundary, about 130 draws x 1e-5 per image.
  EXPECT_LE(images_differing(a.tokens, b.tokens), 2) << "of 40 images";
}

TEST(CudaGeneration, Bf16IsAsCloseToF32AsTheCpusBf16) {
  VARCODE_GPU_OR_SKIP();
  GenerateRequest req;
  req.classes = {1, 5};
  req.seed = 4;
  req.sampling = test::greedy_sampling();
  const GenerateResult cpu32 = Generator::open(shipped_pair(3), ComputeDType::f32, Device{}).generate(req);
  const GenerateResult cpu16 = Generator::open(shipped_pair(3), ComputeDType::bf16, Device{}).generate(req);
  const GenerateResult gpu16 = Generator::open(shipped_pair(3), ComputeDType::bf16, first_gpu()).generate(req);
  const double cpu_err = test::max_abs_diff(cpu32.images, cpu16.images);
  const double gpu_err = test::max_abs_diff(cpu32.images, gpu16.images);
  // Greedy tokens can flip in bf16 on either device; compare only where both kept f32's tokens.
  if (differing_tokens(cpu32.tokens, cpu16.tokens) == 0 && differing_tokens(cpu32.tokens, gpu16.tokens) == 0) {
    EXPECT_LE(gpu_err, std::max(2 * cpu_err, 1e-2)) << "GPU bf16 vs f32 " << gpu_err << ", CPU bf16 vs f32 " << cpu_err;
  }
  EXPECT_LE(differing_tokens(cpu32.tokens, gpu16.tokens),
            std::max<int64_t>(4, 2 * differing_tokens(cpu32.tokens, cpu16.tokens)));
}

TEST(CudaGeneration, ImagesDoNotDependOnTheBatchTheyShare) {
  VARCODE_GPU_OR_SKIP();
  Generator gpu = Generator::open(shipped_pair(3), ComputeDType::bf16, first_gpu());
  GenerateRequest all;
  all.classes = {2, 4, 6, 8, 1, 3};
  all.seed = 9;
  all.sampling = test::code_sampling();
  const GenerateResult together = gpu.generate(all);
  for (int i : {0, 4}) {
    GenerateRequest one = all;
    one.classes = {all.classes[static_cast<size_t>(i)]};
    one.first_index = static_cast<uint32_t>(i);
    const GenerateResult alone = gpu.generate(one);
    const int64_t L = alone.tokens.dim(1);
    for (int64_t t = 0; t < L; ++t)
      ASSERT_EQ(alone.tokens.data<int64_t>()[t], together.tokens.data<int64_t>()[i * L + t])
          << "image " << i << " token " << t;
  }
}

TEST(CudaGeneration, CodeDraftsExactlyWhatTheDrafterDrawsAlone) {
  VARCODE_GPU_OR_SKIP();
  const int n = 3;
  Generator pair = Generator::open(shipped_pair(n), ComputeDType::f32, first_gpu());
  Generator alone = Generator::open(shipped_drafter(), ComputeDType::f32, first_gpu());
  GenerateRequest req;
  req.classes = {0, 5, 9};
  req.seed = 17;
  req.sampling = test::code_sampling();
  const GenerateResult a = pair.generate(req), b = alone.generate(req);
  int64_t drafted = 0;
  for (int s = 0; s < n; ++s)
    drafted += int64_t{pair.patch_nums()[static_cast<size_t>(s)]} * pair.patch_nums()[static_cast<size_t>(s)];
  const int64_t L = a.tokens.dim(1);
  for (int64_t i = 0; i < a.tokens.dim(0); ++i)
    for (int64_t t = 0; t < drafted; ++t)
      ASSERT_EQ(a.tokens.data<int64_t>()[i * L + t], b.tokens.data<int64_t>()[i * L + t])
          << "image " << i << " token " << t;
}

TEST(CudaGeneration, OfficialSizeRandomLogitsMatchTheCpu) {
  VARCODE_GPU_OR_SKIP();
  ModelFiles files;
  files.vae = "random";
  files.model = "random:d16";
  Tensor tokens = Tensor::zeros(DType::i64, {1, 680});  // [1, L]
  for (int64_t t = 0; t < 680; ++t) tokens.data<int64_t>()[t] = (t * 2654435761LL) % 4096;
  for (ComputeDType dt : {ComputeDType::f32, ComputeDType::bf16}) {
    Tensor want = Generator::open(files, dt, Device{}).teacher_forced_logits(0, tokens, 207);  // [1, L, V]
    Tensor got = Generator::open(files, dt, first_gpu()).teacher_forced_logits(0, tokens, 207);
    ASSERT_EQ(got.shape(), want.shape());
    double num = 0, den = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const double d = double{got.data<float>()[i]} - want.data<float>()[i];
      num += d * d;
      den += double{want.data<float>()[i]} * want.data<float>()[i];
    }
    const double rel = std::sqrt(num / den);
    // f32: both sides round differently in every sum of 1024-4096 products (~1e-6 relative); bf16:
    // the GPU rounds activations to bf16 before each product (the CPU keeps them in f32 for its
    // kernels' own reasons), ~0.4% per layer is bf16's half-ulp; 1% leaves room over 16 blocks.
    EXPECT_LE(rel, dt == ComputeDType::f32 ? 1e-4 : 2e-2) << (dt == ComputeDType::f32 ? "f32" : "bf16");
  }
}

TEST(CudaGeneration, VqvaeDecodeAndEncodeMatchTheCpu) {
  VARCODE_GPU_OR_SKIP();
  VqvaeModel cpu = VqvaeModel::open(test::kShippedModels + "fashion_vae.pth", DType::f32, Device{});
  VqvaeModel gpu = VqvaeModel::open(test::kShippedModels + "fashion_vae.pth", DType::f32, first_gpu());
  const std::vector<int> pn = cpu.default_schedule();
  int64_t L = 0;
  for (int p : pn) L += int64_t{p} * p;
  Tensor tokens = Tensor::zeros(DType::i64, {3, L});  // [B, L]
  for (int64_t i = 0; i < tokens.numel(); ++i) tokens.data<int64_t>()[i] = (i * 7919) % cpu.vocab();
  const Tensor a = cpu.decode_tokens(tokens, pn), b = gpu.decode_tokens(tokens, pn);
  EXPECT_LE(test::max_abs_diff(a, b), 1e-4) << "decode, f32";
  const EncodeResult ea = cpu.encode(a, pn), eb = gpu.encode(a, pn);
  // Encoding picks nearest codes: identical unless a latent is within rounding of two codes.
  EXPECT_LE(differing_tokens(ea.tokens, eb.tokens), ea.tokens.numel() / 1000);
}

}  // namespace
}  // namespace varcode
