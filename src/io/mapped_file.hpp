// Read-only memory map of a whole file; shared ownership so that tensors can borrow into it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace varcode::io {

class MappedFile {
 public:
  // Maps `path` read-only; Error naming the path when it cannot be opened or mapped. An empty
  // file maps to size() == 0 and a null data().
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  // Drops the resident pages wholly inside [p, p + n) (a no-op outside the mapping). The file
  // is mapped read-only and private, so a later read faults the same bytes back in: this only
  // lowers the resident memory of a loader that has converted or packed those bytes.
  void release(const void* p, size_t n) const;
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// The first `n` bytes of a file (fewer when it is shorter); Error naming the path when unreadable.
std::string read_file_prefix(const std::string& path, size_t n);

}  // namespace varcode::io
