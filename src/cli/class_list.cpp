#include "class_list.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "text.hpp"
#include "varcode/error.hpp"

namespace varcode::cli {

namespace {

// Letters and digits only, lower case: "T-shirt" -> "tshirt".
std::string fold(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    if (std::isalnum(c)) out.push_back(static_cast<char>(std::tolower(c)));
  return out;
}

int find_name(const std::string& item, const std::vector<std::string>& names) {
  const std::string want = fold(item);
  if (want.empty()) return -1;
  for (size_t i = 0; i < names.size(); ++i)
    if (fold(names[i]) == want) return static_cast<int>(i);
  for (size_t i = 0; i < names.size(); ++i) {
    std::stringstream parts(names[i]);
    std::string part;
    while (std::getline(parts, part, '/'))
      if (fold(part) == want) return static_cast<int>(i);
  }
  return -1;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " Did you mean 'Sneaker'?" for the (up to three) names nearest to a misspelt one, by edit
// distance over the folded name and its '/'-parts; "" when none is near.
std::string suggestion(const std::string& item, const std::vector<std::string>& names) {
  const std::string want = fold(item);
  if (want.empty()) return "";
  const size_t limit = std::max<size_t>(2, want.size() / 3);
  std::vector<std::pair<size_t, size_t>> near;  // (distance, name index)
  for (size_t i = 0; i < names.size(); ++i) {
    size_t best = edit_distance(want, fold(names[i]));
    std::stringstream parts(names[i]);
    std::string part;
    while (std::getline(parts, part, '/')) best = std::min(best, edit_distance(want, fold(part)));
    if (best <= limit) near.emplace_back(best, i);
  }
  if (near.empty()) return "";
  std::stable_sort(near.begin(), near.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::string out = " Did you mean ";
  for (size_t k = 0; k < std::min<size_t>(3, near.size()); ++k)
    out += (k ? (k + 1 == std::min<size_t>(3, near.size()) ? " or '" : ", '") : "'") + names[near[k].second] + "'";
  return out + "?";
}

}  // namespace

std::vector<int> parse_classes(const std::string& s, const std::string& flag, int num_classes,
                               const std::vector<std::string>& names) {
  std::string hint = " (expected class numbers 0-" + std::to_string(num_classes - 1) + ", ranges such as 0-3, `all`";
  if (!names.empty()) hint += " or names such as '" + names.front() + "'";
  hint += ")";
  if (trim(s).empty()) throw Error(flag + ": empty" + hint);
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item == "all") {
      for (int c = 0; c < num_classes; ++c) out.push_back(c);
      continue;
    }
    if (const int named = find_name(item, names); named >= 0) {
      out.push_back(named);
      continue;
    }
    const size_t dash = item.find('-', 1);
    long long lo = 0, hi = 0;
    const bool ok = dash == std::string::npos
                        ? parse_uint(item, &lo) && ((hi = lo), true)
                        : parse_uint(trim(item.substr(0, dash)), &lo) && parse_uint(trim(item.substr(dash + 1)), &hi);
    if (!ok) {
      std::string what = "'" + item + "' is not a class number, a range";
      what += names.empty() ? " or `all`; this model has no class names (one per line in "
                              "<model>.classes.txt or classes.txt beside the model file)"
                            : ", `all` or a class name";
      throw Error(flag + ": " + what + hint + suggestion(item, names));
    }
    if (hi < lo) throw Error(flag + ": the range '" + item + "' is empty (it ends before it starts)");
    if (hi >= num_classes)
      throw Error(flag + ": " + std::to_string(hi) + " is outside the model's classes [0, " +
                  std::to_string(num_classes) + ")");
    for (long long c = lo; c <= hi; ++c) out.push_back(static_cast<int>(c));
  }
  if (out.empty()) throw Error(flag + ": no class given" + hint);
  return out;
}

}  // namespace varcode::cli
