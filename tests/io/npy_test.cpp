#include "io/npy.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.hpp"
#include "io_test_util.hpp"

namespace varcode::io {
namespace {

TEST(Npy, RoundTripF32AndI64) {
  TempDir dir;
  Tensor f = Tensor::empty(DType::f32, {2, 3, 5});
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = 0.25f * static_cast<float>(i) - 3;
  write_npy(dir.path("a.npy"), f);
  Tensor g = read_npy(dir.path("a.npy"));
  ASSERT_EQ(g.shape(), f.shape());
  ASSERT_EQ(g.dtype(), DType::f32);
  EXPECT_EQ(std::memcmp(g.raw(), f.raw(), f.nbytes()), 0);
  EXPECT_EQ(std::filesystem::file_size(dir.path("a.npy")) % 64, f.nbytes() % 64);  // 64-byte aligned header

  Tensor l = Tensor::empty(DType::i64, {7});
  for (int64_t i = 0; i < 7; ++i) l.data<int64_t>()[i] = (i - 3) * 1000000000000LL;
  write_npy(dir.path("b.npy"), l);
  Tensor m = read_npy(dir.path("b.npy"));
  ASSERT_EQ(m.shape(), (Shape{7}));
  EXPECT_EQ(std::memcmp(m.raw(), l.raw(), l.nbytes()), 0);

  Tensor s = Tensor::zeros(DType::f32, {});  // 0-d
  write_npy(dir.path("c.npy"), s);
  EXPECT_EQ(read_npy(dir.path("c.npy")).numel(), 1);
  Tensor e = Tensor::zeros(DType::f32, {0, 4});
  write_npy(dir.path("d.npy"), e);
  EXPECT_EQ(read_npy(dir.path("d.npy")).shape(), (Shape{0, 4}));

  EXPECT_THROW(write_npy(dir.path("e.npy"), Tensor::zeros(DType::bf16, {2})), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.path("e.npy")));
}

std::string npy_bytes(const std::string& dict, size_t data_bytes, char major = 1) {
  std::string s = "\x93NUMPY";
  s += major;
  s += '\0';
  std::string h = dict + "\n";
  s += static_cast<char>(h.size() & 0xff);
  s += static_cast<char>(h.size() >> 8);
  if (major != 1) s += std::string(2, '\0');
  return s + h + std::string(data_bytes, '\x01');
}

TEST(Npy, ReadsHalfAndBytes) {
  TempDir dir;
  write_bytes(dir.path("h.npy"), npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", 6));
  Tensor h = read_npy(dir.path("h.npy"));
  EXPECT_EQ(h.dtype(), DType::f16);
  EXPECT_EQ(h.shape(), (Shape{3}));
  write_bytes(dir.path("u.npy"), npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", 4));
  Tensor u = read_npy(dir.path("u.npy"));
  EXPECT_EQ(u.dtype(), DType::f32);
  EXPECT_EQ(u.data<float>()[3], 1.0f);
}

TEST(Npy, BadInputsNameTheFileAndProblem) {
  TempDir dir;
  struct Case {
    std::string bytes, expect;
  };
  const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  std::vector<Case> cases = {
      {"", "bad magic"},
      {"hello world, not numpy", "bad magic"},
      {npy_bytes(ok, 23), "needs"},
      {npy_bytes(ok, 24).substr(0, 12), "runs past the end"},
      {npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24), "unsupported .npy dtype '>f4'"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24), "Fortran"},
      {npy_bytes("{'descr': '<f4', 'shape': (2, 3), }", 24), "missing"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 24), "non-integer"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }", 24), "overflows"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 24), "too large"},
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", 24), "unterminated"},
      {npy_bytes(ok, 24, 7), "version"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string p = dir.path("bad" + std::to_string(i) + ".npy");
    write_bytes(p, cases[i].bytes);
    expect_error([&] { read_npy(p); }, {p, cases[i].expect});
  }
  expect_error([&] { read_npy(dir.path("missing.npy")); }, {"missing.npy", "cannot open"});
}

TEST(AtomicFile, WritesAndCleansUp) {
  TempDir dir;
  const std::string p = dir.path("x.bin");
  write_file_atomically(p, "hello", 5);
  EXPECT_EQ(read_bytes(p), "hello");
  EXPECT_THROW(write_atomically(p,
                                [](const std::string& tmp) {
                                  std::ofstream(tmp) << "partial";
                                  throw Error("boom");
                                }),
               Error);
  EXPECT_EQ(read_bytes(p), "hello");  // untouched
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.root())) (void)e, ++files;
  EXPECT_EQ(files, 1u);  // no temporary left behind
  expect_error([&] { write_file_atomically(dir.path("no/such/dir/y.bin"), "a", 1); }, {"y.bin"});
}

}  // namespace
}  // namespace varcode::io
