// Loads the parity fixtures' checkpoints and arrays.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "io/checkpoint.hpp"
#include "io/mapped_file.hpp"
#include "io/npy.hpp"
#include "io_test_util.hpp"

namespace varcode::io {
namespace {

namespace fs = std::filesystem;
const std::string kFixtures = VARCODE_FIXTURES;

std::vector<std::string> fixture_pths() {
  std::vector<std::string> out;
  for (const char* dir : {"tiny", "tiny512"})
    for (const auto& e : fs::directory_iterator(kFixtures + "/" + dir))
      if (e.path().extension() == ".pth") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(FixtureCheckpoints, AllLoad) {
  auto files = fixture_pths();
  ASSERT_EQ(files.size(), 5u);
  for (const auto& f : files) {
    Checkpoint ck = load_checkpoint(f);
    EXPECT_EQ(ck.container, "pth") << f;
    EXPECT_GT(ck.tensors.size(), 10u) << f;
    for (const auto& [name, t] : ck.tensors) {
      EXPECT_TRUE(t.defined()) << f << " " << name;
      EXPECT_EQ(name.rfind("module.", 0), std::string::npos);
    }
  }
}

TEST(FixtureCheckpoints, VaeShapesAndValues) {
  Checkpoint ck = load_checkpoint(kFixtures + "/tiny/vae.pth");
  const Tensor& emb = ck.tensor("quantize.embedding.weight");
  EXPECT_EQ(emb.shape(), (Shape{4096, 32}));
  EXPECT_EQ(emb.dtype(), DType::f32);
  EXPECT_EQ(ck.tensor("encoder.conv_in.weight").shape(), (Shape{32, 3, 3, 3}));
  EXPECT_EQ(ck.tensor("decoder.conv_out.weight").dim(1), 32);
  // Random weights: not all zero, all finite.
  double sum = 0;
  for (int64_t i = 0; i < emb.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(emb.data<float>()[i]));
    sum += std::fabs(emb.data<float>()[i]);
  }
  EXPECT_GT(sum, 0);
  EXPECT_THROW(ck.tensor("no.such.tensor"), Error);
  try {
    ck.tensor("no.such.tensor");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no.such.tensor"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("vae.pth"), std::string::npos);
  }
}

TEST(FixtureCheckpoints, VarShapesAndBuffers) {
  for (const char* f : {"/tiny/drafter.pth", "/tiny/refiner.pth", "/tiny512/drafter.pth"}) {
    Checkpoint ck = load_checkpoint(kFixtures + f);
    const int64_t C = ck.tensor("word_embed.weight").dim(0);
    EXPECT_EQ(ck.tensor("word_embed.weight").shape(), (Shape{C, 32})) << f;
    EXPECT_EQ(ck.tensor("head.weight").shape(), (Shape{4096, C})) << f;
    EXPECT_EQ(ck.tensor("class_emb.weight").shape(), (Shape{1001, C})) << f;
    const Tensor& zk = ck.tensor("blocks.0.attn.zero_k_bias");
    EXPECT_EQ(zk.shape(), (Shape{C})) << f;
    for (int64_t i = 0; i < zk.numel(); ++i) ASSERT_EQ(zk.data<float>()[i], 0.0f) << f;
    EXPECT_EQ(ck.tensor("blocks.0.attn.scale_mul_1H11").shape(), (Shape{1, C / 64, 1, 1})) << f;
  }
  Checkpoint ck = load_checkpoint(kFixtures + "/tiny/drafter.pth");
  EXPECT_EQ(ck.tensor("pos_1LC").shape(), (Shape{1, 680, 256}));
  EXPECT_EQ(ck.tensor("lvl_1L").dtype(), DType::i64);
  Checkpoint ck512 = load_checkpoint(kFixtures + "/tiny512/drafter.pth");
  EXPECT_EQ(ck512.tensor("pos_1LC").dim(1), 2240);
}

// Stored entries are used in place: every tensor of a fixture points into the file's mapping.
TEST(FixtureCheckpoints, ZeroCopy) {
  for (const auto& f : fixture_pths()) {
    Checkpoint ck = load_pth(f);
    size_t checked = 0;
    for (const auto& [name, t] : ck.tensors) {
      if (t.numel() == 0) continue;
      EXPECT_TRUE(points_into_file(t.raw(), f)) << f << " " << name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u) << f << " " << name;  // torch aligns to 64
      ++checked;
    }
    EXPECT_GT(checked, 10u) << f;
  }
}

TEST(FixtureArrays, ReadNpy) {
  Tensor tok = read_npy(kFixtures + "/tiny/var_drafter_tokens.npy");
  EXPECT_EQ(tok.dtype(), DType::i64);
  EXPECT_EQ(tok.shape(), (Shape{2, 680}));
  for (int64_t i = 0; i < tok.numel(); ++i) {
    ASSERT_GE(tok.data<int64_t>()[i], 0);
    ASSERT_LT(tok.data<int64_t>()[i], 4096);
  }
  Tensor img = read_npy(kFixtures + "/tiny/var_drafter_image.npy");
  EXPECT_EQ(img.dtype(), DType::f32);
  EXPECT_EQ(img.shape(), (Shape{2, 3, 256, 256}));
}

}  // namespace
}  // namespace varcode::io
