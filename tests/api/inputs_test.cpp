// The public inputs API (varcode/inputs.hpp) that the CLI, the C API and the Python package share.
#include "varcode/inputs.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "varcode/error.hpp"

namespace varcode {
namespace {

const std::vector<std::string> kNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                         "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Inputs, ParseClassesTakesNumbersRangesNamesAndAll) {
  EXPECT_EQ(parse_classes("sneaker, 0-2,T-shirt,top,ankle boot,9", "--class", 10, kNames),
            (std::vector<int>{7, 0, 1, 2, 0, 0, 9, 9}));
  EXPECT_EQ(parse_classes("all", "--class", 3, {}), (std::vector<int>{0, 1, 2}));
  EXPECT_NE(error_of([] { parse_classes("bogus", "--class", 10, kNames); }).find("--class: 'bogus' is not a class"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { parse_classes("10", "what", 10, kNames); }).find("what: 10 is outside the model's classes [0, 10)"),
      std::string::npos);
  EXPECT_NE(error_of([] { parse_classes("3-1", "c", 10, {}); }).find("is empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_classes(" ", "c", 10, {}); }).find("c: empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_classes("sneaker", "c", 10, {}); }).find("has no class names"), std::string::npos);
}

TEST(Inputs, BoxAndOutpaintMasks) {
  Tensor box = box_mask(4, 6, 1, 2, 4, 3, "--box");  // [4, 6]
  ASSERT_EQ(box.shape(), (Shape{4, 6}));
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x)
      EXPECT_EQ(box.data<float>()[y * 6 + x], (y == 2 && x >= 1 && x < 4) ? 1.0f : 0.0f) << y << "," << x;
  EXPECT_NE(error_of([] { box_mask(4, 6, 0, 0, 7, 2, "--box"); }).find("--box 0,0,7,2 is not a non-empty rectangle"),
            std::string::npos);
  EXPECT_FALSE(error_of([] { box_mask(4, 6, 2, 0, 2, 2, "--box"); }).empty());
  Tensor border = outpaint_mask(5, 5, 1, "--outpaint");  // [5, 5]
  float inside = 0;
  for (int i = 0; i < 25; ++i) inside += border.data<float>()[i];
  EXPECT_EQ(inside, 16.0f);  // all but the 3 x 3 centre
  EXPECT_EQ(border.data<float>()[2 * 5 + 2], 0.0f);
  EXPECT_NE(error_of([] { outpaint_mask(5, 5, 3, "--outpaint"); }).find("the margin must be in [1, 2]"),
            std::string::npos);
}

TEST(Inputs, FitEditMaskChecksAndMaps) {
  Tensor m = box_mask(8, 8, 0, 0, 4, 8, "box");       // left half
  Tensor fitted = fit_edit_mask(m, 8, 8, 4, "mask");  // [4, 4]
  ASSERT_EQ(fitted.shape(), (Shape{4, 4}));
  EXPECT_EQ(fitted.data<float>()[0], 1.0f);
  EXPECT_EQ(fitted.data<float>()[3], 0.0f);
  EXPECT_NE(error_of([] {
              fit_edit_mask(Tensor::zeros(DType::f32, {8, 8}), 8, 8, 4, "mask");
            }).find("regenerates nothing"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              fit_edit_mask(Tensor::zeros(DType::f32, {8, 4}), 8, 6, 4, "m.npy");
            }).find("m.npy: a mask of 4x8 cannot be mapped"),
            std::string::npos);
  Tensor bad = Tensor::zeros(DType::f32, {2, 2});
  bad.data<float>()[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { fit_edit_mask(bad, 2, 2, 2, "mask"); }).find("[0, 1]"), std::string::npos);
}

TEST(Inputs, Rgb8BytesAreThePngBytes) {
  Tensor img = Tensor::empty(DType::f32, {1, 3, 1, 2});  // [1, 3, 1, 2]
  const float v[6] = {0.0f, 1.0f, 0.5f, -3.0f, std::numeric_limits<float>::quiet_NaN(), 0.99999f};
  std::copy(v, v + 6, img.data<float>());
  uint8_t rgb[6];
  images_to_rgb8(img, rgb);  // [1, 1, 2, 3]
  // pixel 0: (0, 0.5, NaN) -> (0, 127, 0); pixel 1: (1, -3, 0.99999) -> (255, 0, 254): truncated
  EXPECT_EQ(std::vector<int>(rgb, rgb + 6), (std::vector<int>{0, 127, 0, 255, 0, 254}));
  EXPECT_FALSE(error_of([] { images_to_rgb8(Tensor::zeros(DType::f32, {3, 2, 2}), nullptr); }).empty());
}

TEST(Inputs, PictureFromRgb8IsTheFittedPicture) {
  const uint8_t rgb[2 * 2 * 3] = {0, 51, 255, 255, 0, 102, 0, 0, 0, 255, 255, 255};
  Tensor pic = picture_from_rgb8(rgb, 2, 2, 2);  // same size: the bytes / 255
  ASSERT_EQ(pic.shape(), (Shape{3, 2, 2}));
  EXPECT_FLOAT_EQ(pic.data<float>()[0 * 4 + 0], 0.0f);
  EXPECT_FLOAT_EQ(pic.data<float>()[1 * 4 + 0], 51.0f / 255.0f);
  EXPECT_FLOAT_EQ(pic.data<float>()[2 * 4 + 1], 102.0f / 255.0f);
  Tensor one = picture_from_rgb8(rgb, 2, 2, 1);  // shrinking: the area mean
  EXPECT_NEAR(one.data<float>()[0], (0 + 255 + 0 + 255) / 4.0f / 255.0f, 1e-6);
  EXPECT_FALSE(error_of([&] { picture_from_rgb8(rgb, 0, 2, 2); }).empty());
}

TEST(Inputs, BuiltinModelFilesFollowTheEnvironment) {
  ::setenv("VARCODE_MODELS", VARCODE_SOURCE_DIR "/models", 1);
  const ModelFiles f = builtin_model_files();
  EXPECT_NE(f.drafter.find("fashion_drafter.pth"), std::string::npos);
  EXPECT_EQ(f.draft_steps, 3);
  ::setenv("VARCODE_MODELS", "/nonexistent-models", 1);
  EXPECT_NE(error_of([] { builtin_model_files({VARCODE_SOURCE_DIR "/models"}); }).find("/nonexistent-models"),
            std::string::npos);
  ::unsetenv("VARCODE_MODELS");
  EXPECT_NE(builtin_model_files({VARCODE_SOURCE_DIR "/models"}).vae.find("fashion_vae.pth"), std::string::npos);
}

}  // namespace
}  // namespace varcode
