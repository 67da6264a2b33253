// varcode: reading and writing the arrays and pictures users hand us or ask for. Every write is
// atomic (a temporary file renamed into place): an error never leaves a half-written file.
#pragma once
#include <string>

#include "varcode/tensor.hpp"

namespace varcode {

Tensor load_npy(const std::string& path);
void save_npy(const std::string& path, const Tensor& t);  // f32 or i64

// images [B, 3, H, W] f32 in [0, 1] -> 8-bit RGB (x * 255 truncated, as the reference's sampling
// scripts do). A grid: ceil(sqrt(B)) columns, no padding.
void save_png_grid(const std::string& path, const Tensor& images);
// DIR/<names[i]>.png for each image, or DIR/000000.png ... when names is empty.
void save_pngs(const std::string& dir, const Tensor& images, const std::vector<std::string>& names = {});

// A PNG as f32 [1, 3, H, W] in [0, 1] (any colour type, converted to RGB).
Tensor load_png(const std::string& path);
// A picture for the VQ-VAE: a PNG of any size is centre-cropped to a square and resized to
// `size` x `size` with an antialiased bicubic filter; an .npy must be f32 [1, 3, H, W] or
// [3, H, W] in [0, 1] with H = W = size and is used as it is. Returns [1, 3, size, size] in [0, 1].
Tensor load_picture(const std::string& path, int size);

void set_num_threads(int n);  // 0 = all cores
int num_threads();

}  // namespace varcode
