// Class lists as users type them: numbers, ranges, the model's class names, or
// `all`.
#pragma once
#include <string>
#include <vector>

namespace varcode::cli {

// Comma-separated items: a class number (7), a range (0-9), `all`, or a name
// from the model's class names (load_class_names), matched ignoring case and
// punctuation, whole or by one of its
// '/'-separated parts ("T-shirt/top" answers to "tshirt", "t-shirt" and "top").
// Order and repeats are kept. Error naming `flag` and what is accepted for
// anything else.
std::vector<int> parse_classes(const std::string& s, const std::string& flag, int num_classes,
                               const std::vector<std::string>& names);

}  // namespace varcode::cli
