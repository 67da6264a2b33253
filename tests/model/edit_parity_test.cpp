// Golden tests for zero-shot inpainting (VAR and CoDe N=5) against the reference, plus the two
// limits of the mechanism: keep everything = the VQ-VAE reconstruction, regenerate everything =
// plain generation with the same seed.
#include <gtest/gtest.h>

#include "model/token_parity.hpp"
#include "sampling_presets.hpp"
#include "test_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/io.hpp"
#include "varcode/runtime.hpp"
#include "varcode/vqvae.hpp"

namespace varcode {

namespace {
// The suite's tolerance rule (test::tolerance), from the largest error measured on these cases.
const double kImageTol = test::tolerance(5.9e-6);  // measured 5.8-5.9e-6

Tensor picture01() {
  Tensor in = load_npy(test::fixture("tiny/inpaint_input.npy"));  // [1, 3, 256, 256] in [-1, 1]
  Tensor out = in.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.data<float>()[i] = (in.data<float>()[i] + 1.0f) * 0.5f;
  return out;
}

void check_case(const Generator& gen, const std::string& name) {
  EditRequest req;
  req.image = picture01();
  req.mask = load_npy(test::fixture("tiny/inpaint_mask.npy"));
  req.class_label = 207;
  req.sampling = test::greedy_sampling();
  GenerateResult res = gen.edit(req);
  Tensor want = load_npy(test::fixture("tiny/" + name + "_tokens.npy"));
  Tensor gap = load_npy(test::fixture("tiny/" + name + "_gap.npy"));
  // tiny/'s smallest gap is 7.9e-4: no near-tie escape here.
  if (test::expect_tokens(res.tokens, want, gap, false, "tiny/" + name) != test::TokenParity::identical) return;
  Tensor img = load_npy(test::fixture("tiny/" + name + "_image.npy"));
  const double err = test::max_abs_diff(res.images, img);
  EXPECT_LE(err, kImageTol) << name << ": image max abs err " << err;
  std::cerr << name << ": tokens identical, image max abs err " << err << "\n";
}

ModelFiles files(bool code) {
  ModelFiles f;
  f.vae = test::fixture("tiny/vae.pth");
  if (code) {
    f.drafter = test::fixture("tiny/drafter.pth");
    f.refiner = test::fixture("tiny/refiner.pth");
    f.draft_steps = 5;
  } else {
    f.model = test::fixture("tiny/drafter.pth");
  }
  return f;
}
}  // namespace

TEST(EditParity, InpaintVar) { check_case(Generator::open(files(false), ComputeDType::f32), "inpaint_var"); }
TEST(EditParity, InpaintCodeN5) { check_case(Generator::open(files(true), ComputeDType::f32), "inpaint_code_n5"); }

TEST(Edit, KeepEverythingIsTheReconstruction) {
  Generator gen = Generator::open(files(true), ComputeDType::f32);
  EditRequest req;
  req.image = picture01();
  req.mask = Tensor::zeros(DType::f32, {256, 256});
  req.class_label = 3;
  req.seed = 5;
  GenerateResult res = gen.edit(req);
  // Every generated scale is overwritten by the picture's latent: the result is the VQ-VAE's
  // reconstruction of the picture, whatever the seed or class.
  VqvaeModel vae = VqvaeModel::open(test::fixture("tiny/vae.pth"));
  EncodeResult enc = vae.encode(load_npy(test::fixture("tiny/inpaint_input.npy")));  // input in [-1, 1]
  ASSERT_EQ(enc.reconstruction.shape(), res.images.shape());
  const double err = test::max_abs_diff(res.images.data<float>(), enc.reconstruction.data<float>(), res.images.numel());
  EXPECT_LE(err, 1e-4) << "all-keep edit vs reconstruction, max abs err " << err;
}

TEST(Edit, RegenerateEverythingIsGeneration) {
  Generator gen = Generator::open(files(true), ComputeDType::f32);
  EditRequest req;
  req.image = picture01();
  req.mask = Tensor::empty(DType::f32, {256, 256});
  for (int64_t i = 0; i < req.mask.numel(); ++i) req.mask.data<float>()[i] = 1.0f;
  req.class_label = 207;
  req.seed = 11;
  GenerateResult edited = gen.edit(req);
  GenerateRequest g;
  g.classes = {207};
  g.seed = 11;
  GenerateResult plain = gen.generate(g);
  for (int64_t i = 0; i < plain.tokens.numel(); ++i)
    ASSERT_EQ(edited.tokens.data<int64_t>()[i], plain.tokens.data<int64_t>()[i]) << "token " << i;
  EXPECT_LE(test::max_abs_diff(edited.images.data<float>(), plain.images.data<float>(), plain.images.numel()), 1e-5);
}

TEST(Edit, RejectsBadInputs) {
  Generator gen = Generator::open(files(false), ComputeDType::f32);
  EditRequest req;
  req.image = picture01();
  req.mask = Tensor::zeros(DType::f32, {128, 128});
  EXPECT_THROW(gen.edit(req), Error);
  req.mask = Tensor::zeros(DType::f32, {256, 256});
  req.class_label = 1000;
  EXPECT_THROW(gen.edit(req), Error);
  req.class_label = 1;
  req.image = Tensor::zeros(DType::f32, {1, 3, 64, 64});
  EXPECT_THROW(gen.edit(req), Error);
}

}  // namespace varcode
