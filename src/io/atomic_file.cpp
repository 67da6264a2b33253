#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "varcode/error.hpp"

namespace varcode::io {

namespace {

std::string errno_str() { return std::strerror(errno); }

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open for fsync: " + errno_str());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Directories on some filesystems refuse fsync; only the data file's fsync is essential.
  if (rc != 0 && !(flags & O_DIRECTORY)) throw Error(path + ": fsync failed: " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

// A fresh, empty temporary beside `path`: PATH.tmp.<pid>.<6 random characters> from mkstemp, so
// that threads of one process (which share the pid) never pick the same name.
std::string make_temporary(const std::string& path) {
  std::string name = path + ".tmp." + std::to_string(::getpid()) + ".XXXXXX";
  const int fd = ::mkstemp(name.data());
  if (fd < 0) throw Error(path + ": cannot create a temporary file beside it: " + errno_str());
  // mkstemp makes it 0600; the finished file gets what a plain create would give.
  ::fchmod(fd, 0644);
  ::close(fd);
  return name;
}

void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write) {
  const std::string tmp = make_temporary(path);
  try {
    write(tmp);
    fsync_path(tmp, O_RDONLY);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(path + ": cannot rename " + tmp + " into place: " + errno_str());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  try {
    fsync_path(parent_dir(path), O_RDONLY | O_DIRECTORY);
  } catch (const Error&) {
    // The file is complete and in place; durability of the rename is best effort.
  }
}

void write_file_atomically(const std::string& path, const void* data, size_t size) {
  write_atomically(path, [&](const std::string& tmp) {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(path + ": cannot create " + tmp + ": " + errno_str());
    const auto* p = static_cast<const uint8_t*>(data);
    size_t done = 0;
    while (done < size) {
      ssize_t w = ::write(fd, p + done, size - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        int err = errno;
        ::close(fd);
        throw Error(path + ": write failed: " + std::strerror(err));
      }
      done += static_cast<size_t>(w);
    }
    if (::close(fd) != 0) throw Error(path + ": close failed: " + errno_str());
  });
}

}  // namespace varcode::io
