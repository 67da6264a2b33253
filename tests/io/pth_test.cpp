// .pth reading against archives built by pth_writer: dtypes, views, sharing, nesting, and bad input.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <random>

#include "io/checkpoint.hpp"
#include "io_test_util.hpp"
#include "pth_writer.hpp"

namespace varcode::io {
namespace {

using testing::build_pth;
using testing::build_zip;
using testing::f32_bytes;
using testing::Pickler;
using testing::state_dict_pickle;
using testing::Storage;
using testing::TensorSpec;
using testing::ZipEntrySpec;

template <class T>
std::vector<T> values(const Tensor& t) {
  std::vector<T> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.raw(), t.nbytes());
  return v;
}

std::string file_with(const TempDir& dir, const std::string& name, const std::string& bytes) {
  const std::string p = dir.path(name);
  write_bytes(p, bytes);
  return p;
}

// One f32 storage '0' of `n` floats 0, 1, ..
std::vector<Storage> iota_storage(int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  return {{"0", f32_bytes(v)}};
}

TEST(Pth, AllDtypesZeroCopy) {
  TempDir dir;
  std::vector<TensorSpec> ts = {
      {"h", "HalfStorage", "0", 3, 0, {3}, {1}},        {"b", "BFloat16Storage", "1", 2, 0, {2}, {1}},
      {"l", "LongStorage", "2", 3, 0, {3}, {1}},        {"f", "FloatStorage", "3", 6, 0, {2, 3}, {3, 1}, true},
      {"d", "DoubleStorage", "4", 2, 0, {2}, {1}},      {"s", "FloatStorage", "5", 1, 0, {}, {}},
      {"e", "FloatStorage", "6", 0, 0, {0, 4}, {4, 1}},
  };
  std::vector<Storage> st = {{"0", testing::u16_bytes({f32_to_f16(1.5f), f32_to_f16(-2), f32_to_f16(0.25f)})},
                             {"1", testing::u16_bytes({f32_to_bf16(3), f32_to_bf16(-0.5f)})},
                             {"2", testing::i64_bytes({-1, 1LL << 40, 7})},
                             {"3", f32_bytes({0, 1, 2, 3, 4, 5})},
                             {"4", testing::f64_bytes({0.125, -1e10})},
                             {"5", f32_bytes({42})},
                             {"6", ""}};
  const std::string bytes = build_pth(state_dict_pickle(ts), st);
  const std::string path = file_with(dir, "all.pth", bytes);
  for (int from_memory = 0; from_memory < 2; ++from_memory) {
    Checkpoint ck = from_memory ? load_pth_from_memory(bytes.data(), bytes.size(), "mem.pth") : load_checkpoint(path);
    ASSERT_EQ(ck.tensors.size(), 7u);
    EXPECT_EQ(ck.tensor("h").dtype(), DType::f16);
    EXPECT_EQ(f16_to_f32(values<uint16_t>(ck.tensor("h"))[1]), -2.0f);
    EXPECT_EQ(ck.tensor("b").dtype(), DType::bf16);
    EXPECT_EQ(bf16_to_f32(values<uint16_t>(ck.tensor("b"))[0]), 3.0f);
    EXPECT_EQ(ck.tensor("l").dtype(), DType::i64);
    EXPECT_EQ(values<int64_t>(ck.tensor("l")), (std::vector<int64_t>{-1, 1LL << 40, 7}));
    EXPECT_EQ(ck.tensor("f").shape(), (Shape{2, 3}));
    EXPECT_EQ(values<float>(ck.tensor("f"))[5], 5.0f);
    EXPECT_EQ(ck.tensor("d").dtype(), DType::f32);  // f64 converted
    EXPECT_EQ(values<float>(ck.tensor("d")), (std::vector<float>{0.125f, -1e10f}));
    EXPECT_EQ(ck.tensor("s").shape(), Shape{});
    EXPECT_EQ(values<float>(ck.tensor("s"))[0], 42.0f);
    EXPECT_EQ(ck.tensor("e").shape(), (Shape{0, 4}));
    for (const char* n : {"h", "b", "l", "f", "s"}) {
      // From a file: in place in the mapping; from memory: always a copy.
      EXPECT_EQ(points_into_file(ck.tensor(n).raw(), path), !from_memory) << n;
      const auto* p = static_cast<const char*>(ck.tensor(n).raw());
      EXPECT_FALSE(p >= bytes.data() && p < bytes.data() + bytes.size()) << n;
    }
  }
}

TEST(Pth, StridedViewIsCopiedContiguous) {
  TempDir dir;
  // storage [2, 3] row-major; the tensor is its transpose [3, 2] with strides (1, 3)
  const std::string path = file_with(
      dir, "t.pth", build_pth(state_dict_pickle({{"t", "FloatStorage", "0", 6, 0, {3, 2}, {1, 3}}}), iota_storage(6)));
  Checkpoint ck = load_pth(path);
  const Tensor& t = ck.tensor("t");
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(values<float>(t), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_FALSE(points_into_file(t.raw(), path));
  // An expanded view (stride 0) and a sliced 3-d view with an offset.
  const std::string p2 =
      file_with(dir, "e.pth",
                build_pth(state_dict_pickle({{"x", "FloatStorage", "0", 24, 1, {2, 2, 2}, {12, 4, 2}},
                                             {"y", "FloatStorage", "0", 24, 5, {3, 2}, {0, 1}}}),
                          iota_storage(24)));
  Checkpoint c2 = load_pth(p2);
  EXPECT_EQ(values<float>(c2.tensor("x")), (std::vector<float>{1, 3, 5, 7, 13, 15, 17, 19}));
  EXPECT_EQ(values<float>(c2.tensor("y")), (std::vector<float>{5, 6, 5, 6, 5, 6}));
}

TEST(Pth, TensorsShareOneStorage) {
  TempDir dir;
  const std::string path = file_with(dir, "s.pth",
                                     build_pth(state_dict_pickle({{"a", "FloatStorage", "0", 10, 0, {4}, {1}},
                                                                  {"b", "FloatStorage", "0", 10, 4, {2, 3}, {3, 1}}}),
                                               iota_storage(10)));
  Checkpoint ck = load_pth(path);
  const Tensor& a = ck.tensor("a");
  const Tensor& b = ck.tensor("b");
  EXPECT_EQ(static_cast<const float*>(b.raw()), static_cast<const float*>(a.raw()) + 4);
  EXPECT_TRUE(points_into_file(b.raw(), path));
  EXPECT_EQ(values<float>(b), (std::vector<float>{4, 5, 6, 7, 8, 9}));
  // From memory the storage is copied once and shared too.
  const std::string bytes = read_bytes(path);
  Checkpoint m = load_pth_from_memory(bytes.data(), bytes.size(), "m.pth");
  EXPECT_EQ(static_cast<const float*>(m.tensor("b").raw()), static_cast<const float*>(m.tensor("a").raw()) + 4);
}

TEST(Pth, NestedStateDictsAndModulePrefix) {
  const std::vector<TensorSpec> ts = {{"module.w", "FloatStorage", "0", 4, 0, {4}, {1}, true},
                                      {"module.blocks.0.b", "FloatStorage", "0", 4, 2, {2}, {1}}};
  for (const auto& nest : std::vector<std::vector<std::string>>{
           {}, {"state_dict"}, {"model"}, {"module"}, {"ema"}, {"trainer", "var_wo_ddp"}, {"state_dict", "model"}}) {
    for (const char* top : {"archive", "drafter", "weird-name_1"}) {
      const std::string bytes = build_pth(state_dict_pickle(ts, nest), iota_storage(4), top);
      Checkpoint ck = load_pth_from_memory(bytes.data(), bytes.size(), "n.pth");
      ASSERT_EQ(ck.tensors.size(), 2u) << top;
      EXPECT_EQ(values<float>(ck.tensor("w")), (std::vector<float>{0, 1, 2, 3}));
      EXPECT_EQ(values<float>(ck.tensor("blocks.0.b")), (std::vector<float>{2, 3}));
    }
  }
}

TEST(Pth, CompressedAndMisalignedEntriesAreCopied) {
  TempDir dir;
  const auto pickle = state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, {6}, {1}}});
  const std::string deflated = file_with(dir, "z.pth", build_pth(pickle, iota_storage(6), "archive", true));
  Checkpoint z = load_pth(deflated);
  EXPECT_EQ(values<float>(z.tensor("w")), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_FALSE(points_into_file(z.tensor("w").raw(), deflated));
  const std::string misaligned = file_with(dir, "m.pth", build_pth(pickle, iota_storage(6), "archive", false, 2));
  Checkpoint m = load_pth(misaligned);
  EXPECT_EQ(values<float>(m.tensor("w")), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_FALSE(points_into_file(m.tensor("w").raw(), misaligned));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m.tensor("w").raw()) % 4, 0u);
  // 2-byte elements at a 2-byte boundary are still used in place.
  const std::string half = file_with(dir, "h.pth",
                                     build_pth(state_dict_pickle({{"h", "HalfStorage", "0", 2, 0, {2}, {1}}}),
                                               {{"0", testing::u16_bytes({1, 2})}}, "archive", false, 2));
  Checkpoint h = load_pth(half);
  EXPECT_TRUE(points_into_file(h.tensor("h").raw(), half));
}

TEST(Pth, Zip64OffsetsPastFourGiB) {
  TempDir dir;
  const std::string path = dir.path("big.pth");
  testing::write_zip64_pth(path);
  ASSERT_GT(std::filesystem::file_size(path), uint64_t{1} << 32);
  Checkpoint ck = load_checkpoint(path);
  ASSERT_EQ(ck.tensors.size(), 1u);
  EXPECT_EQ(values<float>(ck.tensor("w")), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_TRUE(points_into_file(ck.tensor("w").raw(), path));
}

// ---- bad input: every failure names the file and the problem ----

void expect_pth_error(const std::string& bytes, const std::vector<std::string>& parts) {
  expect_error([&] { load_pth_from_memory(bytes.data(), bytes.size(), "bad.pth"); },
               [&] {
                 auto p = parts;
                 p.push_back("bad.pth");
                 return p;
               }());
}

std::string pth_with_pickle(const std::string& pickle) { return build_pth(pickle, iota_storage(4)); }

TEST(PthErrors, TruncatedEmptyRandom) {
  TempDir dir;
  const std::string good = build_pth(state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {4}, {1}}}), iota_storage(4));
  for (size_t cut :
       {size_t{1}, size_t{4}, size_t{30}, good.size() / 3, good.size() / 2, good.size() - 23, good.size() - 1}) {
    const std::string p = file_with(dir, "cut" + std::to_string(cut) + ".pth", good.substr(0, cut));
    expect_error([&] { load_pth(p); }, {p, "zip"});
  }
  const std::string empty = file_with(dir, "empty.pth", "");
  expect_error([&] { load_checkpoint(empty); }, {empty, "empty file"});
  expect_error([&] { load_pth(empty); }, {empty, "empty file"});
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (auto& c : noise) c = static_cast<char>(rng());
  noise[8] = 'x';
  const std::string rnd = file_with(dir, "random.bin", noise);
  expect_error([&] { load_checkpoint(rnd); }, {rnd, "not a checkpoint"});
  expect_error([&] { load_pth(rnd); }, {rnd, "not a valid zip archive"});
  expect_error([&] { load_checkpoint(dir.path("absent.pth")); }, {"absent.pth", "cannot open"});
}

TEST(PthErrors, ZipWithoutDataPkl) {
  expect_pth_error(build_zip({{"archive/data/0", f32_bytes({1})}, {"archive/version", "3\n"}}), {"data.pkl"});
  expect_pth_error(build_zip({{"data.pkl", state_dict_pickle({})}}), {"data.pkl"});  // no top folder
}

TEST(PthErrors, ForbiddenGlobalsAndOpcodes) {
  expect_pth_error(
      pth_with_pickle(Pickler().proto().global("os", "system").str("ls").op('\x85').op('R').stop().bytes()),
      {"forbidden pickle global 'os.system'"});
  expect_pth_error(pth_with_pickle(Pickler().proto().global("torch", "IntStorage").stop().bytes()),
                   {"forbidden pickle global 'torch.IntStorage'"});
  expect_pth_error(pth_with_pickle(Pickler().proto().mark().raw("ios\nsystem\n").stop().bytes()),
                   {"unsupported pickle opcode INST (0x69)", "data.pkl"});
  expect_pth_error(pth_with_pickle(Pickler().proto().str("os").str("system").op('\x93').stop().bytes()),
                   {"unsupported pickle opcode STACK_GLOBAL"});
  expect_pth_error(pth_with_pickle(Pickler().proto().op('\xff').bytes()), {"unsupported pickle opcode unknown (0xff)"});
  expect_pth_error(pth_with_pickle(Pickler().raw("\x80\x04\x95").stop().bytes()),
                   {"pickle protocol 4 is not supported"});
  expect_pth_error(pth_with_pickle(Pickler().proto().global("torch", "FloatStorage").op(')').op('R').stop().bytes()),
                   {"'torch.FloatStorage' cannot be called"});
}

TEST(PthErrors, MalformedPickles) {
  expect_pth_error(pth_with_pickle(Pickler().proto().op('}').bytes()), {"truncated pickle"});
  expect_pth_error(pth_with_pickle(Pickler()
                                       .proto()
                                       .op('X')
                                       .raw("\xff\xff\xff\x7f"
                                            "abc")
                                       .bytes()),
                   {"runs past the end"});
  expect_pth_error(pth_with_pickle(Pickler().proto().op('h').raw("\x05").stop().bytes()), {"memo entry 5"});
  expect_pth_error(pth_with_pickle(Pickler().proto().op('s').stop().bytes()), {"stack underflow"});
  expect_pth_error(pth_with_pickle(Pickler().proto().op('t').stop().bytes()), {"MARK missing"});
  expect_pth_error(pth_with_pickle(Pickler().proto().op('\x8a').raw("\x09").stop().bytes()), {"64 bits"});
  expect_pth_error(pth_with_pickle(Pickler().proto().op(']').stop().bytes()), {"list, expected a dict of tensors"});
  expect_pth_error(pth_with_pickle(Pickler().proto().op('}').str("epoch").integer(3).op('s').stop().bytes()),
                   {"no tensors found", "'epoch'"});
  // A dict that contains itself must not recurse forever.
  expect_pth_error(pth_with_pickle(Pickler()
                                       .proto()
                                       .op('}')
                                       .op('q')
                                       .raw(std::string(1, '\0'))
                                       .str("state_dict")
                                       .op('h')
                                       .raw(std::string(1, '\0'))
                                       .op('s')
                                       .stop()
                                       .bytes()),
                   {"no tensors found"});
  TensorSpec dup{"module.a", "FloatStorage", "0", 4, 0, {4}, {1}};
  TensorSpec plain = dup;
  plain.name = "a";
  expect_pth_error(pth_with_pickle(state_dict_pickle({dup, plain})), {"'a' appears twice"});
}

TEST(PthErrors, TensorsOutsideTheirStorage) {
  auto one = [](TensorSpec t) { return pth_with_pickle(state_dict_pickle({t})); };
  expect_pth_error(one({"w", "FloatStorage", "0", 4, 0, {5}, {1}}),
                   {"tensor 'w'", "runs past the end of its storage '0'"});
  expect_pth_error(one({"w", "FloatStorage", "0", 4, 3, {2}, {1}}), {"tensor 'w'", "runs past"});
  expect_pth_error(one({"w", "FloatStorage", "0", 4, 0, {2, 2}, {3, 1}}), {"tensor 'w'", "runs past"});
  expect_pth_error(one({"w", "FloatStorage", "0", 4, 0, {1LL << 40, 1LL << 40}, {1, 1}}), {"tensor 'w'", "overflows"});
  expect_pth_error(one({"w", "FloatStorage", "0", 4, 0, {2, 2}, {1LL << 62, 1}}), {"tensor 'w'", "runs past"});
  expect_pth_error(one({"w", "FloatStorage", "0", 4, -1, {2}, {1}}), {"tensor 'w'", "negative storage offset"});
  expect_pth_error(one({"w", "FloatStorage", "0", 4, 0, {2}, {-1}}), {"tensor 'w'", "negative stride"});
  expect_pth_error(one({"w", "FloatStorage", "0", 100, 0, {4}, {1}}), {"tensor 'w'", "claims 100 elements"});
  expect_pth_error(one({"w", "LongStorage", "0", 4, 0, {4}, {1}}), {"tensor 'w'", "claims 4 elements"});
  expect_pth_error(one({"w", "FloatStorage", "9", 4, 0, {4}, {1}}), {"tensor 'w'", "storage '9' is missing"});
  expect_pth_error(pth_with_pickle(Pickler()
                                       .proto()
                                       .ordered_dict()
                                       .str("w")
                                       .global("torch._utils", "_rebuild_tensor_v2")
                                       .mark()
                                       .integer(1)
                                       .integer(0)
                                       .op(')')
                                       .op(')')
                                       .op('\x89')
                                       .op('N')
                                       .tuple()
                                       .op('R')
                                       .op('s')
                                       .stop()
                                       .bytes()),
                   {"first argument is not a storage"});
}

TEST(PthErrors, ByteOrderAndCopyBudget) {
  std::vector<ZipEntrySpec> entries = {
      {"archive/data.pkl", state_dict_pickle({{"w", "FloatStorage", "0", 1, 0, {1}, {1}}})},
      {"archive/data/0", f32_bytes({1})},
      {"archive/byteorder", "big"}};
  expect_pth_error(build_zip(entries), {"byte order 'big'"});
  entries[2].data = "little";
  EXPECT_EQ(load_pth_from_memory(build_zip(entries).data(), build_zip(entries).size(), "ok.pth").tensors.size(), 1u);
  // Many transposed copies of one 4 MiB storage would need far more memory than the file holds.
  std::vector<TensorSpec> views;
  for (int i = 0; i < 20; ++i)
    views.push_back(
        {std::string("v").append(std::to_string(i)), "FloatStorage", "0", 1 << 20, 0, {1024, 1024}, {1, 1024}});
  expect_pth_error(build_pth(state_dict_pickle(views), iota_storage(1 << 20)),
                   {"tensor 'v1", "would need a copy", "file of"});
  // An expanded (stride 0) view of one element claiming 2^60 elements.
  expect_pth_error(
      pth_with_pickle(state_dict_pickle({{"x", "FloatStorage", "0", 4, 0, {1LL << 30, 1LL << 30}, {0, 0}}})),
      {"tensor 'x'", "would need a copy of 1152921504606846976 x 4 bytes"});
}

}  // namespace
}  // namespace varcode::io

namespace varcode::io {
namespace {

int64_t peak_rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// 4 MB of one-byte opcodes that each made a ~240-byte value (EMPTY_DICT, EMPTY_LIST, NONE, ...):
// the reader asked for ~1 GB (~15 GB for 64 MB). It must stop at its budget (64 bytes per byte of
// pickle + 1 MiB) with an error that says so. ctest runs each test in a fresh process, so the
// peak RSS measured here is this test's own.
TEST(PthErrors, TinyOpcodeFloodHasBoundedMemory) {
  for (const char op : {'}', ']', 'N', ')', '('}) {
    const int64_t before = peak_rss_kb();
    std::string flood = Pickler().proto().bytes();
    flood.append(size_t{4} << 20, op);
    expect_pth_error(pth_with_pickle(flood + Pickler().stop().bytes()),
                     op == '}' || op == ']'
                         ? std::vector<std::string>{"MiB of memory to read", "not a torch state dict"}
                     : op == 'N' || op == ')' ? std::vector<std::string>{"expected a dict of tensors"}
                                              : std::vector<std::string>{"data.pkl"});
    const int64_t grown_mb = (peak_rss_kb() - before) / 1024;
    // The budget is 257 MiB; the pickle, its zip and a copy add ~12 MB. AddressSanitizer's redzones
    // and quarantine roughly double what the allocations cost.
#if defined(__SANITIZE_ADDRESS__)
    constexpr int64_t kLimitMb = 800;
#else
    constexpr int64_t kLimitMb = 400;
#endif
    EXPECT_LT(grown_mb, kLimitMb) << "opcode 0x" << std::hex << int{static_cast<uint8_t>(op)};
  }
}

}  // namespace
}  // namespace varcode::io
