// The seam holds: a generation on another device (the emulated one) computes exactly what the CPU
// backend computes, hands every operation device memory only, and crosses between host and device
// only where the models mean to: the request's labels and image indices in, the tokens and the
// images out, once each.
#include <gtest/gtest.h>

#include <vector>

#include "backend/emulated_device.hpp"
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

ModelFiles tiny_var() {
  ModelFiles f;
  f.vae = test::fixture("tiny/vae.pth");
  f.model = test::fixture("tiny/drafter.pth");
  return f;
}

void expect_same(const GenerateResult& a, const GenerateResult& b) {
  ASSERT_EQ(a.tokens.shape(), b.tokens.shape());
  for (int64_t i = 0; i < a.tokens.numel(); ++i)
    ASSERT_EQ(a.tokens.data<int64_t>()[i], b.tokens.data<int64_t>()[i]) << "token " << i;
  ASSERT_EQ(a.images.shape(), b.images.shape());
  for (int64_t i = 0; i < a.images.numel(); ++i)
    ASSERT_EQ(a.images.data<float>()[i], b.images.data<float>()[i]) << "pixel value " << i;  // the same kernels
  EXPECT_EQ(a.images.device(), Device{});
  EXPECT_EQ(a.tokens.device(), Device{});
}
}  // namespace

class DeviceCrossing : public ::testing::TestWithParam<ComputeDType> {};

TEST_P(DeviceCrossing, CollaborativeGenerationCrossesOnlyLabelsTokensAndImages) {
  auto device = std::make_shared<test::EmulatedDevice>();
  Generator on_device = Generator::open(tiny_pair(4), GetParam(), device);
  Generator on_cpu = Generator::open(tiny_pair(4), GetParam());
  EXPECT_GT(device->crossings().uploads, 0);  // the weights went over at load
  EXPECT_EQ(device->crossings().downloads, 0);
  GenerateRequest req;
  req.classes = {207, 980, 1};
  req.seed = 3;
  req.sampling = test::code_sampling();
  const int64_t B = 3, L = on_cpu.total_tokens(), S = on_cpu.image_size();
  for (int run = 0; run < 2; ++run) {
    device->reset_crossings();
    const int64_t live_before = device->live_allocations();
    GenerateResult d = on_device.generate(req);
    const test::EmulatedDevice::Crossings c = device->crossings();
    expect_same(d, on_cpu.generate(req));
    // In: the images' sampling settings, and each stage's labels (drafter, refiner).
    EXPECT_EQ(c.uploads, 3);
    EXPECT_EQ(c.upload_bytes, B * static_cast<int64_t>(sizeof(backend::ImageDraw)) + 2 * (2 * B * 4));
    // Out: the tokens and the images, once.
    EXPECT_EQ(c.downloads, 2);
    EXPECT_EQ(c.download_bytes, B * L * 8 + B * 3 * S * S * 4);
    // Per-request device memory is released with the request (the VQ-VAE's pools keep theirs
    // from the first run on).
    if (run == 1) {
      EXPECT_EQ(device->live_allocations(), live_before);
    }
  }
}

TEST_P(DeviceCrossing, VarGenerationCrossesOncePerBatch) {
  auto device = std::make_shared<test::EmulatedDevice>();
  Generator on_device = Generator::open(tiny_var(), GetParam(), device);
  Generator on_cpu = Generator::open(tiny_var(), GetParam());
  GenerateRequest req;
  req.classes = {5, 6};
  req.seed = 11;
  req.batch = 1;
  req.sampling = test::code_sampling();
  device->reset_crossings();
  GenerateResult d = on_device.generate(req);
  expect_same(d, on_cpu.generate(req));
  EXPECT_EQ(device->crossings().uploads, 2 * 2);    // two batches: sampling settings, labels
  EXPECT_EQ(device->crossings().downloads, 2 * 2);  // two batches: tokens, images
}

TEST_P(DeviceCrossing, EditCrossesThePictureAndMaskInOnly) {
  auto device = std::make_shared<test::EmulatedDevice>();
  Generator on_device = Generator::open(tiny_pair(3), GetParam(), device);
  Generator on_cpu = Generator::open(tiny_pair(3), GetParam());
  const int64_t S = on_cpu.image_size();
  EditRequest req;
  req.image = Tensor::empty(DType::f32, {1, 3, S, S});  // [1, 3, S, S]
  std::vector<float> px = test::random_vector(req.image.numel(), 5, 0.25f);
  for (int64_t i = 0; i < req.image.numel(); ++i)
    req.image.data<float>()[i] = std::min(1.0f, std::max(0.0f, 0.5f + px[static_cast<size_t>(i)]));
  req.mask = Tensor::zeros(DType::f32, {S, S});  // [S, S]
  for (int64_t y = 0; y < S / 2; ++y)
    for (int64_t x = 0; x < S; ++x) req.mask.data<float>()[y * S + x] = 1.0f;
  req.class_label = 42;
  req.seed = 9;
  req.sampling = test::code_sampling();
  device->reset_crossings();
  GenerateResult d = on_device.edit(req);
  expect_same(d, on_cpu.edit(req));
  // In: picture, latent mask, sampling settings, two stages' labels. Out: tokens, images.
  EXPECT_EQ(device->crossings().uploads, 5);
  EXPECT_EQ(device->crossings().downloads, 2);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DeviceCrossing, ::testing::Values(ComputeDType::f32, ComputeDType::bf16),
                         [](const auto& info) { return info.param == ComputeDType::f32 ? "f32" : "bf16"; });

TEST(EmulatedDevice, RefusesHostMemory) {
  test::EmulatedDevice device;
  std::vector<float> host(16, 1.0f);
  Tensor dev = device.alloc(DType::f32, {16});  // [16]
  EXPECT_NO_THROW(device.add_rows(dev.data<float>(), 1, 16, dev.data<float>(), dev.data<float>()));
  EXPECT_THROW(device.add_rows(host.data(), 1, 16, dev.data<float>(), dev.data<float>()), Error);
  EXPECT_THROW(device.to_host(Tensor::zeros(DType::f32, {4})), Error);
  const int64_t live = device.live_allocations();
  dev = Tensor();
  EXPECT_EQ(device.live_allocations(), live - 1);
}

}  // namespace varcode
