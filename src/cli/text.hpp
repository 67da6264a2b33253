// Small text helpers shared by the command-line parsers.
#pragma once
#include <algorithm>
#include <string>

namespace varcode::cli {

inline std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// A strict non-negative integer of at most 9 digits (no sign, no spaces, no trailing junk).
inline bool parse_uint(const std::string& s, long long* out) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    return false;
  *out = std::stoll(s);
  return true;
}

}  // namespace varcode::cli
