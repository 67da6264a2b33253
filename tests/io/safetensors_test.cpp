#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/checkpoint.hpp"
#include "io_test_util.hpp"

namespace varcode::io {
namespace {

Tensor filled(DType dt, Shape shape, int seed) {
  Tensor t = Tensor::empty(dt, std::move(shape));
  auto* p = static_cast<uint8_t*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 31 + static_cast<size_t>(seed));
  return t;
}

TEST(Safetensors, RoundTripAllDtypesAndMetadata) {
  TempDir dir;
  std::map<std::string, Tensor> ts = {
      {"a.f32", filled(DType::f32, {2, 3}, 1)},  {"b.f16", filled(DType::f16, {3}, 2)},
      {"c.bf16", filled(DType::bf16, {5}, 3)},   {"d.i64", filled(DType::i64, {2, 2}, 4)},
      {"e.scalar", filled(DType::f32, {}, 5)},   {"f.empty", Tensor::zeros(DType::f32, {0, 3})},
      {"g.big", filled(DType::f32, {4, 16}, 6)},
  };
  const std::map<std::string, std::string> md = {{"format", "pt"}, {"patch_nums", "1,2,3,4"}};
  const std::string path = dir.path("m.safetensors");
  save_safetensors(path, ts, md);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.root()), {}), 1);  // no temporary left
  const std::string raw = read_bytes(path);
  uint64_t hlen = 0;
  std::memcpy(&hlen, raw.data(), 8);
  EXPECT_EQ((8 + hlen) % 64, 0u);  // data section 64-byte aligned

  Checkpoint ck = load_checkpoint(path);
  EXPECT_EQ(ck.container, "safetensors");
  EXPECT_EQ(ck.metadata, md);
  ASSERT_EQ(ck.tensors.size(), ts.size());
  for (const auto& [name, t] : ts) {
    const Tensor& u = ck.tensor(name);
    EXPECT_EQ(u.dtype(), t.dtype()) << name;
    EXPECT_EQ(u.shape(), t.shape()) << name;
    ASSERT_EQ(u.nbytes(), t.nbytes());
    if (t.nbytes()) {
      EXPECT_EQ(std::memcmp(u.raw(), t.raw(), t.nbytes()), 0) << name;
      EXPECT_TRUE(points_into_file(u.raw(), path)) << name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(u.raw()) % dtype_size(u.dtype()), 0u) << name;
    }
  }
  // Whole multiples of 64 bytes come first and keep 64-byte alignment.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ck.tensor("g.big").raw()) % 64, 0u);

  save_safetensors(path, {{"x", filled(DType::f32, {1}, 0)}}, {});  // overwrite in place
  Checkpoint again = load_safetensors(path);
  EXPECT_TRUE(again.metadata.empty());
  EXPECT_EQ(again.tensors.size(), 1u);
}

std::string st_file(const std::string& json, const std::string& data) {
  std::string s(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(s.data(), &n, 8);
  return s + json + data;
}

TEST(Safetensors, BadInputs) {
  TempDir dir;
  const std::string ok = R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  struct Case {
    std::string bytes, expect;
  };
  std::string past_eof = st_file(ok, std::string(8, '\0'));
  past_eof[0] = '\x7f';
  past_eof[5] = '\x01';
  std::vector<Case> cases = {
      {"abc", "too short"},
      {past_eof, "runs past the end of the file"},
      {st_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 80]}})", std::string(8, '\0')),
       "tensor 'w': data_offsets [0, 80] lie outside the data section of 8 bytes"},
      {st_file(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 4]}})", std::string(8, '\0')), "outside"},
      {st_file(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, '\0')),
       "tensor 'w': shape [3] of f32 needs 12 bytes, data_offsets span 8"},
      {st_file(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 2], "data_offsets": [0, 8]}})",
               std::string(8, '\0')),
       "overflows"},
      {st_file(R"({"w": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}})", std::string(8, '\0')),
       "unsupported dtype 'I32'"},
      {st_file(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", std::string(8, '\0')),
       "not a non-negative integer"},
      {st_file(R"({"w": {"dtype": "F32", "shape": [2]}})", std::string(8, '\0')), "expected an object with dtype"},
      {st_file(R"({"w": )", ""), "not valid JSON"},
      {st_file(R"([1, 2])", ""), "not a JSON object"},
      {st_file(R"({"__metadata__": {"a": 1}})", ""), "__metadata__ value for 'a' is not a string"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = dir.path("bad" + std::to_string(i) + ".safetensors");
    write_bytes(p, cases[i].bytes);
    expect_error([&] { load_safetensors(p); }, {p, cases[i].expect});
  }
  // Through the dispatcher too.
  const std::string p = dir.path("bad2.safetensors");
  expect_error([&] { load_checkpoint(p); }, {p, "outside"});
}

}  // namespace
}  // namespace varcode::io
