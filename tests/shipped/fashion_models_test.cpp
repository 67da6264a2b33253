// The Fashion-MNIST models shipped in models/: they load through the same code
// as the official files, generate, and what they generate is recognised by the
// shipped evaluation classifier, so that an engine regression shows as a drop
// in quality and not only as a changed number.
#include <gtest/gtest.h>

#include <vector>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "io/checkpoint.hpp"
#include "model/weights.hpp"
#include "shipped_models.hpp"
#include "test_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/runtime.hpp"

namespace varcode {
namespace {

const std::string& kModels = test::kShippedModels;
constexpr double kProbeTol = 1e-4;           // C++ classifier vs PyTorch on the stored probe images
constexpr double kMinAccuracy = 0.80;        // issue #8: share of generated images in the class asked for
// issue #19: the hand-overs N with a fine-tuned pair in models/ (fashion_refiner_N.pth), found
// the way the built-in lookup finds them, so that every shipped pair is tested.
std::vector<int> fine_tuned_draft_steps() {
  std::vector<int> found;
  for (int n = 1; n <= 9; ++n)
    if (std::filesystem::exists(kModels + "fashion_refiner_" + std::to_string(n) + ".pth")) found.push_back(n);
  return found;
}

// The evaluation classifier of tools/eval/classifier.py, written plainly (it
// runs on a few hundred 28x28 images in a test): conv3x3(1->32)+ReLU+maxpool2,
// conv3x3(32->64)+ReLU+maxpool2, fc(3136->128)+ReLU, fc(128->10); input (x -
// 0.5) / 0.5.
class FashionClassifier {
 public:
  explicit FashionClassifier(const io::Checkpoint& ck) {
    model::WeightSource ws(ck);
    conv1_w_ = ws.take("conv1.weight", {32, 1, 3, 3});  // [32, 1, 3, 3]
    conv1_b_ = ws.take("conv1.bias", {32});
    conv2_w_ = ws.take("conv2.weight", {64, 32, 3, 3});  // [64, 32, 3, 3]
    conv2_b_ = ws.take("conv2.bias", {64});
    fc1_w_ = ws.take("fc1.weight", {128, 3136});  // [128, 3136]
    fc1_b_ = ws.take("fc1.bias", {128});
    fc2_w_ = ws.take("fc2.weight", {10, 128});  // [10, 128]
    fc2_b_ = ws.take("fc2.bias", {10});
  }

  // x01 [28 * 28] in [0, 1] -> logits [10]; features [128] (the FID features)
  // when asked.
  std::vector<float> logits(const float* x01, std::vector<float>* features = nullptr) const {
    std::vector<float> x(28 * 28);  // [1, 28, 28]
    for (int i = 0; i < 28 * 28; ++i) x[i] = (x01[i] - 0.5f) / 0.5f;
    std::vector<float> h1 = pool(conv_relu(x, 1, 32, 28, conv1_w_, conv1_b_), 32, 28);    // [32, 14, 14]
    std::vector<float> h2 = pool(conv_relu(h1, 32, 64, 14, conv2_w_, conv2_b_), 64, 14);  // [64, 7, 7]
    std::vector<float> f = dense(h2, fc1_w_, fc1_b_, true);                               // [128]
    if (features) *features = f;
    return dense(f, fc2_w_, fc2_b_, false);  // [10]
  }

 private:
  static std::vector<float> conv_relu(const std::vector<float>& x, int cin, int cout, int side, const Tensor& w,
                                      const Tensor& b) {
    std::vector<float> y(static_cast<size_t>(cout) * side * side);  // [cout, side, side]
    const float* W = w.data<float>();
    for (int o = 0; o < cout; ++o)
      for (int r = 0; r < side; ++r)
        for (int c = 0; c < side; ++c) {
          double acc = b.data<float>()[o];
          for (int i = 0; i < cin; ++i)
            for (int kr = 0; kr < 3; ++kr)
              for (int kc = 0; kc < 3; ++kc) {
                const int rr = r + kr - 1, cc = c + kc - 1;
                if (rr < 0 || rr >= side || cc < 0 || cc >= side) continue;
                acc += static_cast<double>(W[((o * cin + i) * 3 + kr) * 3 + kc]) * x[(i * side + rr) * side + cc];
              }
          y[(o * side + r) * side + c] = static_cast<float>(std::max(acc, 0.0));
        }
    return y;
  }
  static std::vector<float> pool(const std::vector<float>& x, int ch, int side) {
    const int s = side / 2;
    std::vector<float> y(static_cast<size_t>(ch) * s * s);  // [ch, side/2, side/2]
    for (int k = 0; k < ch; ++k)
      for (int r = 0; r < s; ++r)
        for (int c = 0; c < s; ++c) {
          const float* p = &x[(k * side + 2 * r) * side + 2 * c];
          y[(k * s + r) * s + c] = std::max(std::max(p[0], p[1]), std::max(p[side], p[side + 1]));
        }
    return y;
  }
  static std::vector<float> dense(const std::vector<float>& x, const Tensor& w, const Tensor& b, bool relu) {
    const int64_t n = w.dim(0), k = w.dim(1);
    std::vector<float> y(static_cast<size_t>(n));
    for (int64_t o = 0; o < n; ++o) {
      double acc = b.data<float>()[o];
      for (int64_t i = 0; i < k; ++i)
        acc += static_cast<double>(w.data<float>()[o * k + i]) * x[static_cast<size_t>(i)];
      y[static_cast<size_t>(o)] = static_cast<float>(relu ? std::max(acc, 0.0) : acc);
    }
    return y;
  }
  Tensor conv1_w_, conv1_b_, conv2_w_, conv2_b_, fc1_w_, fc1_b_, fc2_w_, fc2_b_;
};

// Generated [3, 32, 32] in [0, 1] -> the classifier's input: mean over RGB,
// centre 28x28 crop (the inverse of the training data's 2-pixel padding).
std::vector<float> to_gray28(const float* chw) {
  std::vector<float> g(28 * 28);
  for (int r = 0; r < 28; ++r)
    for (int c = 0; c < 28; ++c) {
      const int at = (r + 2) * 32 + (c + 2);
      g[r * 28 + c] = (chw[at] + chw[1024 + at] + chw[2048 + at]) / 3.0f;
    }
  return g;
}

int argmax(const std::vector<float>& v) { return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin()); }

TEST(ShippedModels, ClassifierMatchesPyTorchOnItsProbe) {
  const io::Checkpoint ck = io::load_checkpoint(kModels + "fashion_classifier.safetensors");
  const FashionClassifier cls(ck);
  model::WeightSource ws(ck);
  const Tensor probe = ws.take("probe_input", {8, 1, 28, 28});  // [8, 1, 28, 28]
  const Tensor want_f = ws.take("probe_features", {8, 128});    // [8, 128]
  const Tensor want_l = ws.take("probe_logits", {8, 10});       // [8, 10]
  double err_f = 0, err_l = 0;
  for (int i = 0; i < 8; ++i) {
    std::vector<float> f;
    const std::vector<float> l = cls.logits(probe.data<float>() + i * 784, &f);
    err_f = std::max(err_f, test::max_abs_diff(f.data(), want_f.data<float>() + i * 128, 128));
    err_l = std::max(err_l, test::max_abs_diff(l.data(), want_l.data<float>() + i * 10, 10));
  }
  EXPECT_LE(err_f, kProbeTol) << "features: max abs error " << err_f;
  EXPECT_LE(err_l, kProbeTol) << "logits: max abs error " << err_l;
}

// Share of `per_class` images of each of the 10 classes that the classifier
// puts in their class.
double class_accuracy(const ModelFiles& files, int per_class, uint64_t seed, ComputeDType dtype = ComputeDType::f32) {
  const Generator gen = Generator::open(files, dtype);
  EXPECT_EQ(gen.compute_dtype(), dtype == ComputeDType::bf16 ? DType::bf16 : DType::f32);
  EXPECT_EQ(gen.num_classes(), 10);
  EXPECT_EQ(gen.image_size(), 32);
  GenerateRequest req;
  for (int c = 0; c < 10; ++c) req.classes.insert(req.classes.end(), static_cast<size_t>(per_class), c);
  req.seed = seed;
  const GenerateResult res = gen.generate(req);
  const FashionClassifier cls(io::load_checkpoint(kModels + "fashion_classifier.safetensors"));
  int right = 0;
  for (size_t i = 0; i < req.classes.size(); ++i) {
    const std::vector<float> g = to_gray28(res.images.data<float>() + i * 3 * 32 * 32);
    right += argmax(cls.logits(g.data())) == req.classes[i];
  }
  return static_cast<double>(right) / static_cast<double>(req.classes.size());
}

TEST(ShippedModels, CoDePairGeneratesRecognisableClasses) {
  const ModelFiles files = test::shipped_pair(3);
  const double acc = class_accuracy(files, 20, 7);
  std::printf("CoDe N=3: %.1f%% of 200 generated images in the class asked for\n", 100 * acc);
  EXPECT_GE(acc, kMinAccuracy);
}

// The pairs fine-tuned for their hand-over (models/fashion_refiner_N.pth, with
// fashion_drafter_N.pth where the drafter's tuning was kept), as the built-in
// lookup picks them: they load in the official layout and generate in class.
TEST(ShippedModels, EachFineTunedPairGeneratesRecognisableClasses) {
  namespace fs = std::filesystem;
  const std::vector<int> shipped = fine_tuned_draft_steps();
  if (shipped.empty()) GTEST_SKIP() << "no fine-tuned pair is shipped (models/README.md, issue #19)";
  for (int n : shipped) {
    ModelFiles files;
    files.vae = kModels + "fashion_vae.pth";
    const std::string drafter_n = kModels + "fashion_drafter_" + std::to_string(n) + ".pth";
    files.drafter = fs::exists(drafter_n) ? drafter_n : kModels + "fashion_drafter.pth";
    files.refiner = kModels + "fashion_refiner_" + std::to_string(n) + ".pth";
    ASSERT_TRUE(fs::exists(files.refiner)) << files.refiner << " is not shipped";
    files.draft_steps = n;
    const double acc = class_accuracy(files, 20, 7);
    std::printf("fine-tuned CoDe N=%d (%s): %.1f%% of 200 generated images in the class asked for\n", n,
                fs::path(files.drafter).filename().c_str(), 100 * acc);
    EXPECT_GE(acc, kMinAccuracy) << "N=" << n;
  }
}

// The quick start runs --dtype auto, which is bf16 where the CPU has AVX512-BF16: that path gets
// the same gate (on other CPUs auto is the f32 path above).
TEST(ShippedModels, CoDePairGeneratesRecognisableClassesInBf16) {
  VARCODE_SKIP_UNLESS_CPU(cpu_has_bf16(), "CPU without AVX512-BF16: --dtype auto is f32 here");
  const ModelFiles files = test::shipped_pair(3);
  const double acc = class_accuracy(files, 20, 7, ComputeDType::bf16);
  std::printf("CoDe N=3, bf16: %.1f%% of 200 generated images in the class asked for\n", 100 * acc);
  EXPECT_GE(acc, kMinAccuracy);
}

TEST(ShippedModels, DrafterAloneGeneratesRecognisableClassesInBf16) {
  VARCODE_SKIP_UNLESS_CPU(cpu_has_bf16(), "CPU without AVX512-BF16: --dtype auto is f32 here");
  const ModelFiles files = test::shipped_drafter();
  const double acc = class_accuracy(files, 20, 8, ComputeDType::bf16);
  std::printf("drafter alone, bf16: %.1f%% of 200 generated images in the class asked for\n", 100 * acc);
  EXPECT_GE(acc, kMinAccuracy);
}

TEST(ShippedModels, DrafterAloneGeneratesRecognisableClasses) {
  const ModelFiles files = test::shipped_drafter();
  const double acc = class_accuracy(files, 20, 8);
  std::printf("drafter alone: %.1f%% of 200 generated images in the class asked for\n", 100 * acc);
  EXPECT_GE(acc, kMinAccuracy);
}

// models/sampling.json: both modes of the built-in models open with the settings it gives (the
// tests above generate with them), and it gives a temperature per scale.
TEST(ShippedModels, BuiltInModelsOpenWithTheirOwnSampling) {
  const std::string path = kModels + "sampling.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path << " is not shipped";
  const nlohmann::json j = nlohmann::json::parse(in);
  for (const auto& [files, mode] : {std::pair{test::shipped_pair(3), "code"}, std::pair{test::shipped_drafter(), "var"}}) {
    const Generator gen = Generator::open(files);
    EXPECT_EQ(gen.sampling_file(), path) << mode;
    const SamplingOptions s = gen.default_sampling();
    const nlohmann::json& want = j.at(mode);
    EXPECT_EQ(s.cfg, want.at("cfg").get<double>()) << mode;
    EXPECT_EQ(s.top_k, want.at("top_k").get<int>()) << mode;
    EXPECT_EQ(s.top_p, want.at("top_p").get<double>()) << mode;
    EXPECT_EQ(s.temperature, want.at("temperature").get<std::vector<double>>()) << mode;
    EXPECT_EQ(static_cast<int>(s.temperature.size()), gen.num_scales()) << mode;
  }
}

}  // namespace
}  // namespace varcode

namespace varcode {
namespace {

TEST(ShippedModels, SuggestedBatchFollowsTheMemoryGiven) {
  const ModelFiles files = test::shipped_drafter();
  const Generator gen = Generator::open(files, ComputeDType::f32);
  const int64_t per_image = gen.memory_per_image();
  // 6 blocks x 130 positions x 256 channels x K,V x f32 x 2 CFG rows = 3.2 MB of KV cache alone
  EXPECT_GE(per_image, 2 * 6 * 130 * 256 * 4 * 2);
  EXPECT_EQ(gen.suggested_batch(per_image * 2 * 5), 5);  // half the memory for 5 images
  EXPECT_EQ(gen.suggested_batch(1), 1);                  // never less than one image
  EXPECT_EQ(gen.suggested_batch(int64_t{1} << 50), 32);  // and at most 32
  EXPECT_GE(gen.suggested_batch(), 1);                   // from /proc/meminfo
}

}  // namespace
}  // namespace varcode
