// Read-only zip access (libzip) over bytes already in memory, e.g. a file mapping. Besides
// copying entries out, it locates where a stored (uncompressed) entry's bytes lie in the buffer,
// so that they can be used in place.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct zip;  // libzip's archive handle

namespace varcode::io {

struct ZipEntryInfo {
  std::string name;
  uint64_t size = 0;       // uncompressed
  uint64_t comp_size = 0;  // as stored
  bool stored = false;     // ZIP_CM_STORE and not encrypted
};

class ZipReader {
 public:
  // `name` labels errors (the file path). The buffer must outlive the reader.
  ZipReader(const uint8_t* data, size_t size, std::string name);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  uint64_t num_entries() const;
  ZipEntryInfo stat(uint64_t index) const;
  std::optional<uint64_t> locate(const std::string& entry_name) const;

  // Offset in the buffer of a stored entry's first data byte, verified against what libzip
  // itself reads; nullopt when the entry is compressed or the location cannot be confirmed.
  std::optional<uint64_t> stored_data_offset(uint64_t index) const;

  // Decompresses/copies the whole entry into `out` (which must hold stat(index).size bytes).
  void read(uint64_t index, void* out) const;

 private:
  struct Source;
  std::unique_ptr<Source> src_;
  ::zip* archive_ = nullptr;
  std::string name_;
};

}  // namespace varcode::io
