// The public VqvaeModel: configuration getters, schedules and error messages (fixture tiny/vae.pth).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "varcode/vqvae.hpp"

namespace varcode {
namespace {

const std::string kTiny = std::string(VARCODE_FIXTURES) + "/tiny";

void expect_error_containing(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing: " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(VqvaeModel, ConfigAndSchedules) {
  VqvaeModel vae = VqvaeModel::open(kTiny + "/vae.pth");
  EXPECT_EQ(vae.ch(), 32);
  EXPECT_EQ(vae.vocab(), 4096);
  EXPECT_EQ(vae.z_channels(), 32);
  EXPECT_EQ(vae.downsample(), 16);
  EXPECT_TRUE(vae.can_encode());
  EXPECT_GT(vae.num_params(), 0);
  EXPECT_EQ(vae.image_size_for_tokens(680), 256);
  EXPECT_EQ(vae.image_size_for_tokens(2240), 512);
  EXPECT_EQ(vae.schedule_for_image_size(256), (std::vector<int>{1, 2, 3, 4, 5, 6, 8, 10, 13, 16}));
  EXPECT_EQ(vae.schedule_for_image_size(512).back(), 32);
  expect_error_containing([&] { vae.schedule_for_image_size(300); }, "fits no scale schedule");
  expect_error_containing([&] { VqvaeModel::schedule_for_tokens(681); }, "681");
}

TEST(VqvaeModel, BadInputs) {
  VqvaeModel vae = VqvaeModel::open(kTiny + "/vae.pth");
  Tensor t = Tensor::zeros(DType::i64, {1, 680});  // [1, 680]
  t.data<int64_t>()[679] = 5000;
  expect_error_containing([&] { vae.decode_tokens(t); }, "token 5000 at position 679 of row 0");
  expect_error_containing([&] { vae.decode_tokens(Tensor::zeros(DType::i64, {1, 30})); }, "matches no known");
  expect_error_containing([&] { vae.decode_tokens(Tensor::zeros(DType::f32, {1, 680})); }, "int64");
  expect_error_containing([&] { vae.decode_fhat(Tensor::zeros(DType::f32, {1, 16, 16, 16})); }, "f_hat");
  expect_error_containing([&] { vae.encode(Tensor::zeros(DType::f32, {1, 3, 64, 64})); }, "fits no scale schedule");
  expect_error_containing([&] { vae.encode(Tensor::zeros(DType::f32, {1, 3, 256, 128})); }, "[B, 3, S, S]");
  expect_error_containing([&] { VqvaeModel::open(kTiny + "/drafter.pth"); }, "is a VAR transformer, expected a VQ-VAE");
  expect_error_containing([&] { VqvaeModel::open(kTiny + "/nonexistent.pth"); }, "nonexistent.pth");
}

TEST(VqvaeModel, FitImage) {
  Tensor img = Tensor::zeros(DType::f32, {3, 300, 500});  // [3, 300, 500]
  EXPECT_EQ(VqvaeModel::fit_image(img, 256).shape(), (Shape{3, 256, 256}));
  EXPECT_EQ(VqvaeModel::fit_image(img, 512).shape(), (Shape{3, 512, 512}));
}

}  // namespace
}  // namespace varcode
