#include "class_list.hpp"

#include "varcode/inputs.hpp"

namespace varcode::cli {

std::vector<int> parse_classes(const std::string& s, const std::string& flag, int num_classes,
                               const std::vector<std::string>& names) {
  return varcode::parse_classes(s, flag, num_classes, names);
}

}  // namespace varcode::cli
