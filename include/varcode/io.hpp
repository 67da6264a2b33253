// varcode public API: the file formats the command-line tool reads and writes. Every write is
// atomic (a temporary file renamed into place): on error no partial file is left behind.
#pragma once
#include <string>

#include "varcode/tensor.hpp"

namespace varcode {

// NumPy .npy: '<f4', '<i8', '<f2' arrays in C order.
Tensor load_npy(const std::string& path);
// f32 or i64 tensors.
void save_npy(const std::string& path, const Tensor& t);

// Any PNG -> f32 [3, H, W] in [0, 1] (value / 255).
Tensor load_png(const std::string& path);
// f32 [3, H, W] in [0, 1] -> 8-bit RGB PNG (clamped, x * 255 truncated, as the reference scripts).
void save_png(const std::string& path, const Tensor& img_chw);

// f32 [B, 3, H, W] -> one [3, rows * H, cols * W] grid, cols = ceil(sqrt(B)), rows = ceil(B / cols),
// images in row-major order, empty cells black; B = 1 gives the image itself.
Tensor image_grid(const Tensor& images);

}  // namespace varcode
