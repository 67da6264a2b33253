// The bf16 decoder (Vqvae::load(ckpt, DType::bf16)) against the f32 one on the tiny fixture's
// f_hat. bf16 is never used by the parity tests; this bounds how far it may drift.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "io/checkpoint.hpp"
#include "io/npy.hpp"
#include "api/random_checkpoint.hpp"
#include "model/vqvae.hpp"
#include "varcode/vqvae.hpp"

namespace varcode::model {
namespace {

const std::string kFixtures = VARCODE_FIXTURES;

// Measured on the tiny fixture (AVX512-BF16 machine): max abs error 0.041 to 0.046 (it moves
// with the f32 rounding of the GroupNorm code that feeds the bf16 stores), mean 0.0036 on [-1, 1]
// images; a margin above both.
constexpr double kMaxTol = 0.06;
constexpr double kMeanTol = 0.01;

struct Errors {
  double max = 0, mean = 0;
};
Errors compare(const Tensor& a, const Tensor& b) {
  Errors e;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::fabs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]);
    e.max = std::max(e.max, d);
    e.mean += d;
  }
  e.mean /= static_cast<double>(std::max<int64_t>(1, a.numel()));
  return e;
}

TEST(VqvaeBf16, DecodeStaysCloseToF32) {
  const io::Checkpoint ck = io::load_checkpoint(kFixtures + "/tiny/vae.pth");
  const Vqvae f32 = Vqvae::load(ck);
  const Vqvae bf16 = Vqvae::load(ck, DType::bf16);
  EXPECT_EQ(f32.compute_dtype(), DType::f32);
  EXPECT_EQ(bf16.compute_dtype(), DType::bf16);
  Tensor f_hat = io::read_npy(kFixtures + "/tiny/vae_decode_fhat.npy");  // [1, Cvae, P, P]
  Tensor want = f32.fhat_to_img(f_hat);                                   // [1, 3, H, W]
  Tensor got = bf16.fhat_to_img(f_hat);                                   // [1, 3, H, W]
  ASSERT_EQ(got.shape(), want.shape());
  const Errors e = compare(got, want);
  std::cout << "[ tiny bf16 decode ] max abs err " << e.max << ", mean abs err " << e.mean << "\n";
  EXPECT_LE(e.max, kMaxTol);
  EXPECT_LE(e.mean, kMeanTol);
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_LE(std::fabs(got.data<float>()[i]), 1.0f);
  // A second decode reuses the pooled buffers and must give the same bits.
  Tensor again = bf16.fhat_to_img(f_hat);
  EXPECT_EQ(compare(again, got).max, 0.0);
}

TEST(VqvaeBf16, PublicApiOpensInBf16) {
  const VqvaeModel f32 = VqvaeModel::open(kFixtures + "/tiny/vae.pth");
  const VqvaeModel bf16 = VqvaeModel::open(kFixtures + "/tiny/vae.pth", DType::bf16);
  Tensor f_hat = io::read_npy(kFixtures + "/tiny/vae_decode_fhat.npy");  // [1, Cvae, P, P]
  EXPECT_LE(compare(bf16.decode_fhat(f_hat), f32.decode_fhat(f_hat)).max, kMaxTol);
  EXPECT_THROW(VqvaeModel::open(kFixtures + "/tiny/vae.pth", DType::f16), Error);
}

TEST(VqvaeBf16, BatchMatchesSingleImages) {
  // A small random VAE with every block kind (shortcut convs, attention, upsampling), batch 2.
  const io::Checkpoint ck = random_vqvae_checkpoint({32, {1, 2}, 1, 64, 8, false, 3});
  for (DType dt : {DType::f32, DType::bf16}) {
    const Vqvae vae = Vqvae::load(ck, dt);
    Tensor f = Tensor::empty(DType::f32, {2, 8, 5, 5});  // [2, 8, 5, 5]
    for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = std::sin(0.37f * static_cast<float>(i));
    Tensor both = vae.fhat_to_img(f);  // [2, 3, 10, 10]
    for (int b = 0; b < 2; ++b) {
      Tensor one = Tensor::empty(DType::f32, {1, 8, 5, 5});  // [1, 8, 5, 5]
      std::copy_n(f.data<float>() + b * 200, 200, one.data<float>());
      Tensor img = vae.fhat_to_img(one);  // [1, 3, 10, 10]
      double err = 0;
      for (int64_t i = 0; i < img.numel(); ++i)
        err = std::max(err, std::fabs(static_cast<double>(img.data<float>()[i]) - both.data<float>()[b * 300 + i]));
      EXPECT_LE(err, dt == DType::bf16 ? 2e-2 : 1e-5) << dtype_name(dt) << " image " << b;
    }
  }
  EXPECT_THROW(Vqvae::load(ck, DType::i64), Error);
}

}  // namespace
}  // namespace varcode::model
