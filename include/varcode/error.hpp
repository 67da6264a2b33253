// varcode: the one exception type the library throws.
#pragma once
#include <stdexcept>
#include <string>

namespace varcode {

// Every user-facing failure (bad file, bad flag, bad shape) is an Error whose message names the
// file, tensor or flag and what was expected. The CLI prints it and exits non-zero.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace varcode
