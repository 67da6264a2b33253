#include "pth_writer.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zip.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "io/zip_reader.hpp"

namespace varcode::io::testing {

namespace {

template <class T>
void put_le(std::string& s, T v, int bytes) {
  for (int k = 0; k < bytes; ++k) s += static_cast<char>((static_cast<uint64_t>(v) >> (8 * k)) & 0xff);
}

template <class T>
std::string le_bytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  if (!v.empty()) std::memcpy(s.data(), v.data(), s.size());
  return s;
}

std::string temp_path(const char* stem) {
  static int counter = 0;
  return (std::filesystem::temp_directory_path() /
          (std::string(stem) + "." + std::to_string(::getpid()) + "." + std::to_string(counter++)))
      .string();
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// One libzip write of `entries` with `pad[i]` bytes of torch's "FB" padding extra field.
std::string write_with_padding(const std::vector<ZipEntrySpec>& entries, const std::vector<uint16_t>& pad) {
  const std::string path = temp_path("varcode_zip");
  int err = 0;
  zip_t* za = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  if (!za) throw std::runtime_error("zip_open failed");
  const std::string zeros(65536, '\0');
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    zip_source_t* src = zip_source_buffer(za, e.data.data(), e.data.size(), 0);
    zip_int64_t idx = zip_file_add(za, e.name.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) throw std::runtime_error(std::string("zip_file_add: ") + zip_strerror(za));
    zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), e.compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    zip_file_extra_field_set(za, static_cast<zip_uint64_t>(idx), 0x4246, ZIP_EXTRA_FIELD_NEW,
                             reinterpret_cast<const zip_uint8_t*>(zeros.data()), pad[i], ZIP_FL_LOCAL);
  }
  if (zip_close(za) != 0) throw std::runtime_error(std::string("zip_close: ") + zip_strerror(za));
  std::string bytes = slurp(path);
  std::remove(path.c_str());
  return bytes;
}

std::vector<uint64_t> data_offsets(const std::string& bytes, size_t n) {
  ZipReader z(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "built.zip");
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < n; ++i) out.push_back(z.stored_data_offset(i).value_or(0));
  return out;
}

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

}  // namespace

Pickler& Pickler::str(const std::string& s) {
  op('X');
  put_le(out_, s.size(), 4);
  return raw(s);
}

Pickler& Pickler::integer(int64_t v) {
  if (v >= 0 && v < 256) {
    op('K');
    put_le(out_, v, 1);
  } else if (v >= 0 && v < 65536) {
    op('M');
    put_le(out_, v, 2);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    op('J');
    put_le(out_, v, 4);
  } else {
    op('\x8a');
    out_ += '\x08';
    put_le(out_, v, 8);
  }
  return *this;
}

void push_tensor(Pickler& p, const TensorSpec& t) {
  if (t.parameter) p.global("torch._utils", "_rebuild_parameter").mark();
  p.global("torch._utils", "_rebuild_tensor_v2").mark();
  p.mark().str("storage").global("torch", t.storage_type).str(t.key).str("cpu").integer(t.storage_numel).tuple();
  p.op('Q');
  p.integer(t.offset);
  p.mark();
  for (int64_t s : t.size) p.integer(s);
  p.tuple().mark();
  for (int64_t s : t.stride) p.integer(s);
  p.tuple().op('\x89').ordered_dict().tuple().op('R');
  if (t.parameter) p.op('\x89').ordered_dict().tuple().op('R');
}

std::string state_dict_pickle(const std::vector<TensorSpec>& tensors, const std::vector<std::string>& nest) {
  Pickler p;
  p.proto();
  for (const auto& key : nest) {
    // {'epoch': 3, 'lr': 0.5, 'sizes': [1, 2], key: <inner>}
    p.op('}').op('q').raw(std::string(1, '\0')).mark();
    p.str("epoch").integer(3).str("lr").op('G').raw(std::string("\x3f\xe0\0\0\0\0\0\0", 8));
    p.str("sizes").op(']').mark().integer(1).integer(2).op('e');
    p.str(key);
  }
  p.ordered_dict().mark();
  for (const auto& t : tensors) {
    p.str(t.name);
    push_tensor(p, t);
  }
  p.op('u');
  // torch attaches `_metadata` to the OrderedDict with BUILD.
  p.op('}').str("_metadata").ordered_dict().op('s').op('b');
  for (size_t i = 0; i < nest.size(); ++i) p.op('u');
  return p.stop().bytes();
}

std::string build_zip(const std::vector<ZipEntrySpec>& entries) {
  // libzip offers no control over where data lands; measure with no padding, then pad each
  // local header so that its data moves to the wanted boundary.
  std::vector<uint16_t> pad(entries.size(), 0);
  const std::vector<uint64_t> base = data_offsets(write_with_padding(entries, pad), entries.size());
  uint64_t shift = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].compress || entries[i].data.empty()) continue;
    const uint64_t at = base[i] + shift;
    pad[i] = static_cast<uint16_t>((64 - (at - static_cast<uint64_t>(entries[i].misalign)) % 64) % 64);
    shift += pad[i];
  }
  std::string bytes = write_with_padding(entries, pad);
  const std::vector<uint64_t> got = data_offsets(bytes, entries.size());
  for (size_t i = 0; i < entries.size(); ++i)
    if (!entries[i].compress && !entries[i].data.empty() &&
        (got[i] == 0 || got[i] % 64 != static_cast<uint64_t>(entries[i].misalign)))
      throw std::runtime_error("build_zip: could not align entry " + entries[i].name);
  return bytes;
}

std::string build_pth(const std::string& pickle, const std::vector<Storage>& storages, const std::string& top,
                      bool compress, int misalign) {
  std::vector<ZipEntrySpec> entries;
  entries.push_back({top + "/data.pkl", pickle, compress, 0});
  for (const auto& s : storages) entries.push_back({top + "/data/" + s.key, s.bytes, compress, misalign});
  entries.push_back({top + "/version", "3\n", false, 0});
  return build_zip(entries);
}

std::string f32_bytes(const std::vector<float>& v) { return le_bytes(v); }
std::string i64_bytes(const std::vector<int64_t>& v) { return le_bytes(v); }
std::string u16_bytes(const std::vector<uint16_t>& v) { return le_bytes(v); }
std::string f64_bytes(const std::vector<double>& v) { return le_bytes(v); }

void write_zip64_pth(const std::string& path) {
  struct Entry {
    std::string name, data;
    uint64_t size, offset;
    uint32_t crc;
  };
  const uint64_t big = (uint64_t{1} << 32) + 64;  // a hole: never written, reads as zeros
  TensorSpec w{"w", "FloatStorage", "0", 4, 0, {4}, {1}, false};
  std::vector<Entry> entries = {
      {"archive/data.pkl", state_dict_pickle({w}), 0, 0, 0},
      {"archive/pad", "", big, 0, 0},
      {"archive/data/0", f32_bytes({1, 2, 3, 4}), 0, 0, 0},
      {"archive/version", "3\n", 0, 0, 0},
  };
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  auto pwrite_all = [&](const std::string& s, uint64_t at) {
    if (::pwrite(fd, s.data(), s.size(), static_cast<off_t>(at)) != static_cast<ssize_t>(s.size()))
      throw std::runtime_error("pwrite failed");
  };
  uint64_t pos = 0;
  for (auto& e : entries) {
    if (e.name != "archive/pad") {
      e.size = e.data.size();
      e.crc = crc32(e.data);
    }
    e.offset = pos;
    const bool z64 = e.size >= 0xffffffffu;
    std::string extra;
    if (z64) {
      put_le(extra, 1, 2);
      put_le(extra, 16, 2);
      put_le(extra, e.size, 8);
      put_le(extra, e.size, 8);
    }
    // torch-style padding so that the data starts on a 64-byte boundary
    const uint64_t unpadded = pos + 30 + e.name.size() + extra.size() + 4;
    const uint64_t pad = (64 - unpadded % 64) % 64;
    put_le(extra, 0x4246, 2);
    put_le(extra, pad, 2);
    extra.append(pad, '\0');
    std::string lh;
    put_le(lh, 0x04034b50, 4);
    put_le(lh, z64 ? 45 : 20, 2);
    put_le(lh, 0, 2);  // flags
    put_le(lh, 0, 2);  // stored
    put_le(lh, 0, 4);  // time, date
    put_le(lh, e.crc, 4);
    put_le(lh, z64 ? 0xffffffffu : e.size, 4);
    put_le(lh, z64 ? 0xffffffffu : e.size, 4);
    put_le(lh, e.name.size(), 2);
    put_le(lh, extra.size(), 2);
    lh += e.name + extra;
    pwrite_all(lh, pos);
    pos += lh.size();
    if (!e.data.empty()) pwrite_all(e.data, pos);
    pos += e.size;
  }
  const uint64_t cd_offset = pos;
  std::string cd;
  for (const auto& e : entries) {
    const bool big_size = e.size >= 0xffffffffu, big_off = e.offset >= 0xffffffffu;
    std::string extra;
    if (big_size || big_off) {
      put_le(extra, 1, 2);
      put_le(extra, (big_size ? 16 : 0) + (big_off ? 8 : 0), 2);
      if (big_size) {
        put_le(extra, e.size, 8);
        put_le(extra, e.size, 8);
      }
      if (big_off) put_le(extra, e.offset, 8);
    }
    put_le(cd, 0x02014b50, 4);
    put_le(cd, 45, 2);
    put_le(cd, 45, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0, 2);
    put_le(cd, 0, 4);
    put_le(cd, e.crc, 4);
    put_le(cd, big_size ? 0xffffffffu : e.size, 4);
    put_le(cd, big_size ? 0xffffffffu : e.size, 4);
    put_le(cd, e.name.size(), 2);
    put_le(cd, extra.size(), 2);
    put_le(cd, 0, 2);  // comment
    put_le(cd, 0, 2);  // disk
    put_le(cd, 0, 2);  // internal attributes
    put_le(cd, 0, 4);  // external attributes
    put_le(cd, big_off ? 0xffffffffu : e.offset, 4);
    cd += e.name + extra;
  }
  const uint64_t eocd64_offset = cd_offset + cd.size();
  std::string tail;
  put_le(tail, 0x06064b50, 4);
  put_le(tail, 44, 8);
  put_le(tail, 45, 2);
  put_le(tail, 45, 2);
  put_le(tail, 0, 4);
  put_le(tail, 0, 4);
  put_le(tail, entries.size(), 8);
  put_le(tail, entries.size(), 8);
  put_le(tail, cd.size(), 8);
  put_le(tail, cd_offset, 8);
  put_le(tail, 0x07064b50, 4);  // locator
  put_le(tail, 0, 4);
  put_le(tail, eocd64_offset, 8);
  put_le(tail, 1, 4);
  put_le(tail, 0x06054b50, 4);  // classic end record, pointing at the ZIP64 one
  put_le(tail, 0, 2);
  put_le(tail, 0, 2);
  put_le(tail, entries.size(), 2);
  put_le(tail, entries.size(), 2);
  put_le(tail, cd.size(), 4);
  put_le(tail, 0xffffffffu, 4);
  put_le(tail, 0, 2);
  pwrite_all(cd + tail, cd_offset);
  ::close(fd);
}

}  // namespace varcode::io::testing
