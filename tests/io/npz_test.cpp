// The streamed .npz writer: layout, item order, failure leaves nothing, ZIP64.
#include <gtest/gtest.h>
#include <zip.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "io/npz.hpp"
#include "varcode/error.hpp"

namespace varcode {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) { return (fs::temp_directory_path() / name).string(); }

// Bytes [offset, offset + n) of member `name` and its size.
std::string read_member(const std::string& path, const std::string& name, uint64_t offset, size_t n, uint64_t* size) {
  int err = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!za) return {};
  zip_stat_t st;
  zip_stat(za, name.c_str(), 0, &st);
  *size = st.size;
  zip_file_t* zf = zip_fopen(za, name.c_str(), 0);
  std::string out(n, '\0');
  std::string skip(1 << 20, '\0');
  while (offset > 0) {  // stored members read sequentially
    const uint64_t k = std::min<uint64_t>(offset, skip.size());
    zip_fread(zf, skip.data(), k);
    offset -= k;
  }
  zip_fread(zf, out.data(), n);
  zip_fclose(zf);
  zip_close(za);
  return out;
}

TEST(Npz, StreamsItemsInOrder) {
  const std::string path = temp_path("varcode_npz_test.npz");
  std::vector<int64_t> seen;
  io::write_npz_u8_streamed(path, "arr_0", {5, 2, 3}, [&](int64_t i, uint8_t* dst) {
    seen.push_back(i);
    for (int k = 0; k < 6; ++k) dst[k] = static_cast<uint8_t>(i * 10 + k);
  });
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  uint64_t size = 0;
  const std::string head = read_member(path, "arr_0.npy", 0, 128, &size);
  EXPECT_EQ(size, 128u + 30u);
  EXPECT_EQ(head.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_NE(head.find("{'descr': '|u1', 'fortran_order': False, 'shape': (5, 2, 3), }"), std::string::npos);
  const std::string data = read_member(path, "arr_0.npy", 128, 30, &size);
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < 6; ++k) EXPECT_EQ(static_cast<uint8_t>(data[static_cast<size_t>(i * 6 + k)]), i * 10 + k);
  fs::remove(path);
}

TEST(Npz, AFailingItemLeavesNoFile) {
  const std::string path = temp_path("varcode_npz_fail.npz");
  fs::remove(path);
  EXPECT_THROW(io::write_npz_u8_streamed(path, "arr_0", {3, 4},
                                         [](int64_t i, uint8_t* dst) {
                                           if (i == 2) throw Error("item 2 is broken");
                                           std::memset(dst, 1, 4);
                                         }),
               Error);
  EXPECT_FALSE(fs::exists(path));
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
    EXPECT_EQ(e.path().filename().string().rfind("varcode_npz_fail.npz", 0), std::string::npos) << e.path();
}

// ~4.3 GB on disk: run by hand (--gtest_also_run_disabled_tests).
TEST(Npz, DISABLED_Zip64BeyondFourGiB) {
  const std::string path = temp_path("varcode_npz_big.npz");
  const int64_t items = 22000;  // x 196608 bytes (256 x 256 x 3) = 4.33 GB
  io::write_npz_u8_streamed(path, "arr_0", {items, 256, 256, 3},
                            [](int64_t i, uint8_t* dst) { std::memset(dst, static_cast<int>(i % 251), 196608); });
  uint64_t size = 0;
  const uint64_t last = 128 + static_cast<uint64_t>(items - 1) * 196608;
  const std::string tail = read_member(path, "arr_0.npy", last, 196608, &size);
  EXPECT_EQ(size, 128 + static_cast<uint64_t>(items) * 196608);
  EXPECT_EQ(static_cast<uint8_t>(tail[0]), (items - 1) % 251);
  EXPECT_EQ(static_cast<uint8_t>(tail.back()), (items - 1) % 251);
  fs::remove(path);
}

}  // namespace
}  // namespace varcode
