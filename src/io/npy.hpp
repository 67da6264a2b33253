// NumPy .npy arrays: the fixtures' format and the --save-tokens / --save-image outputs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

namespace varcode::io {

// Reads '<f4', '<i8', '<f2' (little-endian, C order) arrays, and '|u1' / '|b1' as f32 values
// 0..255 (Tensor has no byte type); Error naming the path otherwise.
Tensor read_npy(const std::string& path);
// The .npy header (magic, version 1.0, the dict padded so that the data starts on a 64-byte
// boundary) for a C-order array of `descr` ('<f4', '|u1', ...) and `shape`.
std::string npy_header(const std::string& descr, const std::vector<int64_t>& shape);
// Writes f32 or i64 tensors as '<f4' / '<i8'; atomic.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace varcode::io
