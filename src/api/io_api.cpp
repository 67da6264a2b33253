// The public file API over the io layer.
#include <cmath>
#include <cstring>

#include "io/npy.hpp"
#include "io/png.hpp"
#include "varcode/io.hpp"

namespace varcode {

Tensor load_npy(const std::string& path) { return io::read_npy(path); }

void save_npy(const std::string& path, const Tensor& t) { io::write_npy(path, t); }

Tensor load_png(const std::string& path) {
  io::Image8 im = io::read_png(path);
  const int64_t H = im.height, W = im.width;
  Tensor t = Tensor::empty(DType::f32, {3, H, W});  // [3, H, W]
  float* p = t.data<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c)
        p[(c * H + y) * W + x] = static_cast<float>(im.rgb[static_cast<size_t>((y * W + x) * 3 + c)]) / 255.0f;
  return t;
}

void save_png(const std::string& path, const Tensor& img_chw) {
  if (img_chw.dtype() != DType::f32 || img_chw.ndim() != 3 || img_chw.dim(0) != 3)
    throw Error("save_png: image must be f32 [3, H, W], got " + shape_str(img_chw.shape()));
  io::write_png(path, io::image_from_chw(img_chw.data<float>(), static_cast<int>(img_chw.dim(1)),
                                         static_cast<int>(img_chw.dim(2))));
}

Tensor image_grid(const Tensor& images) {
  if (images.dtype() != DType::f32 || images.ndim() != 4 || images.dim(0) < 1 || images.dim(1) != 3)
    throw Error("image_grid: images must be f32 [B, 3, H, W], got " + shape_str(images.shape()));
  const int64_t B = images.dim(0), H = images.dim(2), W = images.dim(3);
  int64_t cols = 1;
  while (cols * cols < B) ++cols;
  const int64_t rows = (B + cols - 1) / cols;
  Tensor grid = Tensor::zeros(DType::f32, {3, rows * H, cols * W});  // [3, rows*H, cols*W]
  for (int64_t b = 0; b < B; ++b) {
    const int64_t r0 = (b / cols) * H, c0 = (b % cols) * W;
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < H; ++y)
        std::memcpy(grid.data<float>() + (c * rows * H + r0 + y) * cols * W + c0,
                    images.data<float>() + ((b * 3 + c) * H + y) * W, sizeof(float) * static_cast<size_t>(W));
  }
  return grid;
}

}  // namespace varcode
