// NumPy .npy arrays: the fixtures' format and the --save-tokens / --save-image outputs.
#pragma once
#include <string>

#include "varcode/tensor.hpp"

namespace varcode::io {

// Reads '<f4', '<i8', '<f2' (little-endian, C order) arrays, and '|u1' / '|b1' as f32 values
// 0..255 (Tensor has no byte type); Error naming the path otherwise.
Tensor read_npy(const std::string& path);
// Writes f32 or i64 tensors as '<f4' / '<i8'; atomic.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace varcode::io
