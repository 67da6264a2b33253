// 8-bit RGB PNG read and write (libpng).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

namespace varcode::io {

struct Image8 {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // [H, W, 3]
};

// Any PNG colour type and depth, converted to 8-bit RGB: palette expanded, gray replicated, 16-bit
// scaled to 8, alpha dropped (not composited). Error naming the path on a bad or implausibly large file.
Image8 read_png(const std::string& path);
void write_png(const std::string& path, const Image8& img);  // atomic
// The same in memory (write_png writes exactly encode_png's bytes); `what` names the source in errors.
Image8 decode_png(const uint8_t* data, size_t size, const std::string& what);
std::vector<uint8_t> encode_png(const Image8& img, const std::string& what);

// float [3, H, W] in [0, 1] -> bytes as the reference's sampling scripts do: x * 255, truncated
// (values are clamped to [0, 1] first).
Image8 image_from_chw(const float* chw, int height, int width);
// The same conversion into `dst` (height * width * 3 bytes, [H, W, 3]).
void chw_to_rgb8(const float* chw, int height, int width, uint8_t* dst);

}  // namespace varcode::io
