// The .npz writer writes its one stored zip member itself instead of through libzip: libzip
// chooses ZIP64 records on its own, only past 4 GiB, so that path could not be tested without
// writing 4 GiB. A stored member is a fixed layout (PKWARE APPNOTE 4.3, ZIP64 in 4.3.14-4.5.3):
// local header, data, central directory, the ZIP64 end records when needed, end record.
#include "io/npz.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "io/atomic_file.hpp"
#include "io/npy.hpp"
#include "varcode/error.hpp"

namespace varcode::io {

namespace {

constexpr uint32_t kFull32 = 0xffffffffu;
constexpr uint16_t kDosDate = (1 << 5) | 1;  // 1980-01-01 00:00, zip's epoch: the same data gives the same bytes
constexpr uint16_t kUtf8Name = 1 << 11;

// Little-endian fields appended to a byte string.
struct Bytes {
  std::string s;
  Bytes& u16(uint16_t v) {
    for (int i = 0; i < 2; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  Bytes& u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  Bytes& u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  Bytes& str(const std::string& v) {
    s += v;
    return *this;
  }
};

// Buffered sequential writes to a file descriptor, and one patch in place (the CRC, known last).
class FileOut {
 public:
  FileOut(const std::string& path, const std::string& shown) : shown_(shown) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(shown_ + ": cannot create the .npz: " + std::strerror(errno));
    buf_.reserve(kBuf);
  }
  ~FileOut() {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const void* p, size_t n) {
    const auto* b = static_cast<const char*>(p);
    if (buf_.size() + n > kBuf) flush();
    if (n >= kBuf) {
      raw(b, n, -1);
    } else {
      buf_.append(b, n);
    }
    offset_ += n;
  }
  void write(const std::string& s) { write(s.data(), s.size()); }
  void patch(uint64_t at, const std::string& s) {
    flush();
    raw(s.data(), s.size(), static_cast<off_t>(at));
  }
  void close() {
    flush();
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw Error(shown_ + ": close failed: " + std::strerror(errno));
  }
  uint64_t offset() const { return offset_; }

 private:
  static constexpr size_t kBuf = size_t{1} << 20;
  void flush() {
    raw(buf_.data(), buf_.size(), -1);
    buf_.clear();
  }
  void raw(const char* p, size_t n, off_t at) {
    size_t done = 0;
    while (done < n) {
      const ssize_t w = at < 0 ? ::write(fd_, p + done, n - done) : ::pwrite(fd_, p + done, n - done, at + done);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw Error(shown_ + ": write failed: " + std::strerror(errno));
      }
      done += static_cast<size_t>(w);
    }
  }
  std::string shown_, buf_;
  int fd_ = -1;
  uint64_t offset_ = 0;
};

}  // namespace

void write_npz_u8_streamed(const std::string& path, const std::string& name, const std::vector<int64_t>& shape,
                           const std::function<void(int64_t, uint8_t*)>& fill, uint64_t zip64_above) {
  if (shape.empty()) throw Error(path + ": an .npz array needs at least one dimension");
  int64_t item_bytes = 1;
  for (size_t i = 1; i < shape.size(); ++i) item_bytes *= shape[i];
  const std::string header = npy_header("|u1", shape);
  const std::string member = name + ".npy";
  const uint64_t size = header.size() + static_cast<uint64_t>(shape[0]) * static_cast<uint64_t>(item_bytes);
  // One member at offset 0: its size decides every ZIP64 field (the central directory starts
  // right after it).
  const bool zip64 = size > std::min<uint64_t>(zip64_above, kFull32 - 1024);
  const uint16_t version = zip64 ? 45 : 20;

  write_atomically(path, [&](const std::string& tmp) {
    FileOut out(tmp, path);
    Bytes local;
    local.u32(0x04034b50).u16(version).u16(kUtf8Name).u16(0).u16(0).u16(kDosDate).u32(0);  // CRC patched below
    local.u32(zip64 ? kFull32 : static_cast<uint32_t>(size)).u32(zip64 ? kFull32 : static_cast<uint32_t>(size));
    local.u16(static_cast<uint16_t>(member.size())).u16(zip64 ? 20 : 0).str(member);
    if (zip64) local.u16(0x0001).u16(16).u64(size).u64(size);
    out.write(local.s);

    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(header.data()), static_cast<uInt>(header.size()));
    out.write(header);
    std::vector<uint8_t> item(static_cast<size_t>(item_bytes));
    for (int64_t i = 0; i < shape[0]; ++i) {
      fill(i, item.data());
      crc = crc32_z(crc, item.data(), item.size());
      out.write(item.data(), item.size());
    }
    out.patch(14, Bytes().u32(static_cast<uint32_t>(crc)).s);

    const uint64_t cd_offset = out.offset();
    Bytes central;
    central.u32(0x02014b50).u16(static_cast<uint16_t>(3 << 8 | version)).u16(version).u16(kUtf8Name).u16(0);
    central.u16(0).u16(kDosDate).u32(static_cast<uint32_t>(crc));
    central.u32(zip64 ? kFull32 : static_cast<uint32_t>(size)).u32(zip64 ? kFull32 : static_cast<uint32_t>(size));
    central.u16(static_cast<uint16_t>(member.size())).u16(zip64 ? 28 : 0).u16(0).u16(0).u16(0);
    central.u32(0100644u << 16).u32(zip64 ? kFull32 : 0).str(member);
    if (zip64) central.u16(0x0001).u16(24).u64(size).u64(size).u64(0);  // sizes, then the local header's offset
    out.write(central.s);
    const uint64_t cd_size = central.s.size();

    Bytes end;
    if (zip64) {
      const uint64_t end64 = out.offset();
      end.u32(0x06064b50).u64(44).u16(version).u16(version).u32(0).u32(0).u64(1).u64(1).u64(cd_size).u64(cd_offset);
      end.u32(0x07064b50).u32(0).u64(end64).u32(1);
    }
    end.u32(0x06054b50).u16(0).u16(0).u16(1).u16(1).u32(static_cast<uint32_t>(cd_size));
    end.u32(zip64 ? kFull32 : static_cast<uint32_t>(cd_offset)).u16(0);
    out.write(end.s);
    out.close();
  });
}

}  // namespace varcode::io
