#include "outputs.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <unordered_set>

#include "varcode/error.hpp"

namespace varcode::cli {

namespace fs = std::filesystem;

namespace {
// Creates and removes a probe file in `dir`; the error text, or "" when it worked.
std::string probe(const std::string& dir) {
  std::string name = (fs::path(dir) / ".varcode-write-test.XXXXXX").string();
  const int fd = ::mkstemp(name.data());
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  ::unlink(name.c_str());
  return "";
}
}  // namespace

void check_output_file(const std::string& path, const std::string& flag) {
  if (path.empty()) return;
  const fs::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  std::error_code ec;
  if (fs::is_directory(p, ec)) throw Error(flag + ": " + path + " is a directory, expected a file name");
  if (!fs::is_directory(dir, ec))
    throw Error(flag + ": cannot write " + path + ": the directory " + dir + " does not exist");
  if (const std::string why = probe(dir); !why.empty())
    throw Error(flag + ": cannot write " + path + ": " + dir + " does not accept new files (" + why + ")");
}

void check_output_dir(const std::string& dir, const std::string& flag) {
  if (dir.empty()) return;
  // Nothing is made here (a failed run leaves nothing behind): the nearest existing ancestor must
  // be a directory that accepts new entries.
  std::error_code ec;
  fs::path p = fs::absolute(dir, ec);
  while (!p.empty() && !fs::exists(p, ec) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  if (!fs::is_directory(p, ec))
    throw Error(flag + ": cannot make the directory " + dir + ": " + p.string() + " is not a directory");
  if (const std::string why = probe(p.string()); !why.empty())
    throw Error(flag + ": cannot make or write the directory " + dir + ": " + p.string() +
                " does not accept new files (" + why + ")");
}

void remove_stale_temporaries(const std::string& dir, const std::vector<std::string>& names) {
  const std::unordered_set<std::string> mine(names.begin(), names.end());
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t tmp = name.rfind(".tmp.");
    if (tmp != std::string::npos && mine.count(name.substr(0, tmp))) fs::remove(e.path(), ec);
  }
}

}  // namespace varcode::cli
