// The streamed .npz writer: layout, item order, failure leaves nothing, ZIP64.
#include "io/npz.hpp"

#include <gtest/gtest.h>
#include <zip.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

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

// numpy's own reading of an .npz: "shape sum first-byte last-byte zip64" of arr_0, or "" when
// python3 or numpy fails. scripts/install-deps.sh installs python3-numpy.
std::string numpy_summary(const std::string& path) {
  const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const std::string cmd = py +
                          " -c \"import sys, zipfile, numpy as np; p = sys.argv[1]; a = np.load(p)['arr_0']; "
                          "z = zipfile.ZipFile(p).infolist()[0]; "
                          "print(a.dtype, a.shape, int(a.sum(dtype=np.int64)), a.reshape(-1)[0], a.reshape(-1)[-1], "
                          "z.extract_version >= 45)\" '" +
                          path + "' 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof(buf), p)) out += buf;
    if (pclose(p) != 0) return "python failed: " + out;
  }
  return out;
}

void write_pattern(const std::string& path, int64_t items, uint64_t zip64_above) {
  io::write_npz_u8_streamed(
      path, "arr_0", {items, 4, 4, 3},
      [](int64_t i, uint8_t* dst) {
        for (int k = 0; k < 48; ++k) dst[k] = static_cast<uint8_t>((i * 7 + k) % 251);
      },
      zip64_above);
}

int64_t pattern_sum(int64_t items) {
  int64_t sum = 0;
  for (int64_t i = 0; i < items; ++i)
    for (int k = 0; k < 48; ++k) sum += (i * 7 + k) % 251;
  return sum;
}

TEST(Npz, NumpyReadsIt) {
  const std::string path = temp_path("varcode_npz_numpy.npz");
  write_pattern(path, 100, 0xffffffffu);
  EXPECT_EQ(numpy_summary(path), "uint8 (100, 4, 4, 3) " + std::to_string(pattern_sum(100)) + " 0 " +
                                     std::to_string((99 * 7 + 47) % 251) + " False\n");
  fs::remove(path);
}

// The ZIP64 layout (sizes and offsets in the ZIP64 extra field, the ZIP64 end records) that a
// member beyond 4 GiB gets, forced here at 5 kB by lowering the writer's threshold; numpy and
// libzip read it back.
TEST(Npz, Zip64LayoutReadsBack) {
  const std::string path = temp_path("varcode_npz_zip64.npz");
  const int64_t items = 100;
  write_pattern(path, items, 1000);
  EXPECT_EQ(numpy_summary(path), "uint8 (100, 4, 4, 3) " + std::to_string(pattern_sum(items)) + " 0 " +
                                     std::to_string((99 * 7 + 47) % 251) + " True\n");
  uint64_t size = 0;
  const std::string tail = read_member(path, "arr_0.npy", 128 + 99 * 48, 48, &size);
  EXPECT_EQ(size, 128u + 100u * 48u);
  EXPECT_EQ(static_cast<uint8_t>(tail[47]), (99 * 7 + 47) % 251);
  fs::remove(path);
}

}  // namespace
}  // namespace varcode
