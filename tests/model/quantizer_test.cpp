// Unit tests of the multi-scale quantizer and of loading a VQ-VAE of any shape (random weights).
#include "model/quantizer.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

#include <random>

#include <cmath>

#include "kernels/cpu/resample.hpp"
#include "api/random_checkpoint.hpp"
#include "model/vqvae.hpp"

namespace varcode::model {
namespace {

using model::random_vqvae_checkpoint;
using model::RandomVqvaeSpec;

const std::vector<int> kSchedule256{1, 2, 3, 4, 5, 6, 8, 10, 13, 16};

Tensor random_tokens(int64_t B, int64_t L, int V, uint32_t seed) {
  Tensor t = Tensor::empty(DType::i64, {B, L});  // [B, L]
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng() % static_cast<uint32_t>(V));
  return t;
}

// A small VAE (ch 32, two levels) so the unit tests stay fast.
const Vqvae& small_vae() {
  static const io::Checkpoint ck = random_vqvae_checkpoint({32, {1, 2}, 1, 64, 8, true, 7});
  static const Vqvae vae = Vqvae::load(ck);
  return vae;
}

TEST(Quantizer, PhiTableOfTenScales) {
  EXPECT_EQ(Quantizer::phi_table(10), (std::vector<int>{0, 0, 1, 1, 1, 2, 2, 3, 3, 3}));
  EXPECT_EQ(Quantizer::phi_table(1), (std::vector<int>{0}));
  EXPECT_EQ(Quantizer::phi_table(2), (std::vector<int>{0, 3}));
  EXPECT_THROW(Quantizer::phi_table(0), Error);
}

TEST(Quantizer, TokensToFhatIsTheSumOfScales) {
  const Vqvae& vae = small_vae();
  const Quantizer& q = vae.quantizer();
  const std::vector<int> pn{1, 2, 3, 5};
  Tensor tokens = random_tokens(2, 1 + 4 + 9 + 25, q.vocab(), 3);  // [2, 39]
  Tensor f_hat = q.tokens_to_fhat(tokens, pn);                     // [2, 8, 5, 5]
  ASSERT_EQ(f_hat.shape(), (Shape{2, 8, 5, 5}));
  // Rebuilt scale by scale through the generation-time calls.
  Tensor g = Tensor::zeros(DType::f32, {2, 8, 5, 5});  // [2, 8, 5, 5]
  int64_t begin = 0;
  for (int si = 0; si < 4; ++si) {
    const int64_t n = pn[static_cast<size_t>(si)] * pn[static_cast<size_t>(si)];
    Tensor idx = Tensor::empty(DType::i64, {2, n});  // [2, pn^2]
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < n; ++i) idx.data<int64_t>()[b * n + i] = tokens.data<int64_t>()[b * 39 + begin + i];
    q.add_scale_tokens(si, pn, idx, g);
    if (si < 3) {
      Tensor next = q.next_input(si, pn, g);  // [2, pn_next^2, 8]
      const int pnn = pn[static_cast<size_t>(si + 1)];
      ASSERT_EQ(next.shape(), (Shape{2, pnn * pnn, 8}));
      Tensor down = kernels::cpu::area_down(g, pnn, pnn);  // [2, 8, pnn, pnn]
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t l = 0; l < pnn * pnn; ++l)
          for (int64_t c = 0; c < 8; ++c)
            EXPECT_EQ(next.data<float>()[(b * pnn * pnn + l) * 8 + c], down.data<float>()[(b * 8 + c) * pnn * pnn + l]);
    }
    begin += n;
  }
  EXPECT_EQ(test::max_abs_diff(f_hat, g), 0.0);
  EXPECT_THROW(q.next_input(3, pn, g), Error);
}

TEST(Quantizer, SoftEmbeddingEqualsHardLookupForOneHot) {
  const Quantizer& q = small_vae().quantizer();
  const std::vector<int> pn{1, 2, 4};
  Tensor idx = random_tokens(1, 4, q.vocab(), 5);  // [1, 4]
  Tensor h = q.embed(idx);                         // [1, 4, 8]
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < 8; ++c)
      EXPECT_EQ(h.data<float>()[i * 8 + c], q.embedding().data<float>()[idx.data<int64_t>()[i] * 8 + c]);
  Tensor a = Tensor::zeros(DType::f32, {1, 8, 4, 4}), b = a.clone();  // [1, 8, 4, 4]
  q.add_scale(1, pn, h, a);
  q.add_scale_tokens(1, pn, idx, b);
  EXPECT_EQ(test::max_abs_diff(a, b), 0.0);
}

TEST(Quantizer, RejectsBadTokensAndShapes) {
  const Quantizer& q = small_vae().quantizer();
  const std::vector<int> pn{1, 2};
  Tensor tokens = random_tokens(1, 5, q.vocab(), 9);  // [1, 5]
  tokens.data<int64_t>()[3] = q.vocab();
  EXPECT_THROW(q.tokens_to_fhat(tokens, pn), Error);
  tokens.data<int64_t>()[3] = -1;
  EXPECT_THROW(q.tokens_to_fhat(tokens, pn), Error);
  EXPECT_THROW(q.tokens_to_fhat(random_tokens(1, 6, q.vocab(), 9), pn), Error);
  Tensor f_hat = Tensor::zeros(DType::f32, {1, 8, 3, 3});  // wrong latent side
  EXPECT_THROW(q.add_scale_tokens(0, pn, random_tokens(1, 1, q.vocab(), 1), f_hat), Error);
}

TEST(Quantizer, QuantizeShapesAndCumulativeLatents) {
  const Vqvae& vae = small_vae();
  const std::vector<int> pn{1, 2, 4};
  Tensor f = vae.quantizer().tokens_to_fhat(random_tokens(1, 21, 64, 11), pn);  // [1, 8, 4, 4]
  Quantizer::Quantized out = vae.quantizer().quantize(f, pn);
  EXPECT_EQ(out.tokens.shape(), (Shape{1, 21}));
  ASSERT_EQ(out.f_hat_per_scale.size(), 3u);
  EXPECT_EQ(test::max_abs_diff(out.f_hat_per_scale[2], out.f_hat), 0.0);
  // quantize builds f_hat with exactly the arithmetic of tokens_to_fhat.
  EXPECT_EQ(test::max_abs_diff(vae.quantizer().tokens_to_fhat(out.tokens, pn), out.f_hat), 0.0);
}

TEST(Vqvae, AnyLevelCountAndImageSize) {
  const Vqvae& vae = small_vae();  // two levels: downsample 2
  EXPECT_EQ(vae.config().downsample(), 2);
  const std::vector<int> pn{1, 2, 3};
  EXPECT_EQ(vae.image_size(pn), 6);
  Tensor img = vae.tokens_to_img(random_tokens(2, 14, 64, 2), pn);  // [2, 3, 6, 6]
  ASSERT_EQ(img.shape(), (Shape{2, 3, 6, 6}));
  for (int64_t i = 0; i < img.numel(); ++i) ASSERT_LE(std::fabs(img.data<float>()[i]), 1.0f);
  Quantizer::Quantized q = vae.img_to_tokens(img, pn);
  EXPECT_EQ(q.tokens.shape(), (Shape{2, 14}));
  EXPECT_THROW(vae.img_to_tokens(Tensor::zeros(DType::f32, {1, 3, 8, 8}), pn), Error);
}

TEST(Vqvae, LoadChecksEveryTensor) {
  RandomVqvaeSpec spec{32, {1, 2}, 1, 64, 8, true, 3};
  {
    io::Checkpoint ck = random_vqvae_checkpoint(spec);
    ck.tensors.erase("decoder.up.1.attn.0.qkv.bias");
    EXPECT_THROW(Vqvae::load(ck), Error);
  }
  {
    io::Checkpoint ck = random_vqvae_checkpoint(spec);
    ck.tensors["decoder.extra.weight"] = Tensor::zeros(DType::f32, {3});
    EXPECT_THROW(Vqvae::load(ck), Error);
  }
  {
    io::Checkpoint ck = random_vqvae_checkpoint(spec);
    ck.tensors["post_quant_conv.weight"] = Tensor::zeros(DType::f32, {8, 8, 1, 1});
    try {
      Vqvae::load(ck);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("post_quant_conv.weight"), std::string::npos) << e.what();
    }
  }
  {
    spec.encoder = false;  // a decoder-only file loads; encoding is then an error
    io::Checkpoint ck = random_vqvae_checkpoint(spec);
    Vqvae vae = Vqvae::load(ck);
    EXPECT_FALSE(vae.has_encoder());
    EXPECT_THROW(vae.img_to_latent(Tensor::zeros(DType::f32, {1, 3, 4, 4})), Error);
  }
}

}  // namespace
}  // namespace varcode::model
