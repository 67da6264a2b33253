// The public file API over the io layer.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.hpp"
#include "io/npy.hpp"
#include "io/npz.hpp"
#include "io/png.hpp"
#include "varcode/io.hpp"
#include "varcode/vqvae.hpp"

namespace varcode {

Tensor load_npy(const std::string& path) { return io::read_npy(path); }

void save_npy(const std::string& path, const Tensor& t) { io::write_npy(path, t); }

namespace {
Tensor chw_from_image8(const io::Image8& im) {
  const int64_t H = im.height, W = im.width;
  Tensor t = Tensor::empty(DType::f32, {3, H, W});  // [3, H, W]
  float* p = t.data<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c)
        p[(c * H + y) * W + x] = static_cast<float>(im.rgb[static_cast<size_t>((y * W + x) * 3 + c)]) / 255.0f;
  return t;
}
}  // namespace

Tensor load_png(const std::string& path) { return chw_from_image8(io::read_png(path)); }

Tensor decode_png(const uint8_t* data, size_t size, const std::string& what) {
  return chw_from_image8(io::decode_png(data, size, what));
}

std::vector<uint8_t> encode_png(const Tensor& img_chw) {
  if (img_chw.dtype() != DType::f32 || img_chw.ndim() != 3 || img_chw.dim(0) != 3)
    throw Error("encode_png: image must be f32 [3, H, W], got " + shape_str(img_chw.shape()));
  return io::encode_png(
      io::image_from_chw(img_chw.data<float>(), static_cast<int>(img_chw.dim(1)), static_cast<int>(img_chw.dim(2))),
      "encode_png");
}

void save_png(const std::string& path, const Tensor& img_chw) {
  if (img_chw.dtype() != DType::f32 || img_chw.ndim() != 3 || img_chw.dim(0) != 3)
    throw Error("save_png: image must be f32 [3, H, W], got " + shape_str(img_chw.shape()));
  io::write_png(path, io::image_from_chw(img_chw.data<float>(), static_cast<int>(img_chw.dim(1)),
                                         static_cast<int>(img_chw.dim(2))));
}

Rgb8Image load_png_rgb8(const std::string& path) {
  io::Image8 im = io::read_png(path);
  Rgb8Image out;
  out.height = im.height;
  out.width = im.width;
  out.rgb = std::move(im.rgb);
  return out;
}

void save_text(const std::string& path, const std::string& text) {
  io::write_file_atomically(path, text.data(), text.size());
}

void save_npz_u8(const std::string& path, const std::string& name, const std::vector<int64_t>& shape,
                 const std::function<void(int64_t, uint8_t*)>& fill) {
  io::write_npz_u8_streamed(path, name, shape, fill);
}

Tensor image_grid(const Tensor& images, int64_t cols) {
  if (images.dtype() != DType::f32 || images.ndim() != 4 || images.dim(0) < 1 || images.dim(1) != 3)
    throw Error("image_grid: images must be f32 [B, 3, H, W], got " + shape_str(images.shape()));
  const int64_t B = images.dim(0), H = images.dim(2), W = images.dim(3);
  if (cols <= 0) {
    cols = 1;
    while (cols * cols < B) ++cols;
  }
  cols = std::min(cols, B);
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

void save_pngs(const std::string& dir, const Tensor& images, const std::vector<std::string>& names) {
  if (images.dtype() != DType::f32 || images.ndim() != 4 || images.dim(1) != 3)
    throw Error("save_pngs: images must be f32 [B, 3, H, W], got " + shape_str(images.shape()));
  const int64_t B = images.dim(0), H = images.dim(2), W = images.dim(3);
  if (!names.empty() && static_cast<int64_t>(names.size()) != B) throw Error("save_pngs: one name per image expected");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the output directory: " + ec.message());
  for (int64_t b = 0; b < B; ++b) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%06lld", static_cast<long long>(b));
    const std::string name = names.empty() ? std::string(buf) : names[static_cast<size_t>(b)];
    io::write_png(dir + "/" + name + ".png",
                  io::image_from_chw(images.data<float>() + b * 3 * H * W, static_cast<int>(H), static_cast<int>(W)));
  }
}

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

Tensor load_picture(const std::string& path, int side, int* orig_h, int* orig_w) {
  if (ends_with(path, ".npy")) {
    Tensor t = io::read_npy(path);
    if (t.dtype() != DType::f32) throw Error(path + ": expected a float32 picture, got " + dtype_name(t.dtype()));
    if (t.ndim() == 4 && t.dim(0) == 1) t = t.reshape({t.dim(1), t.dim(2), t.dim(3)});
    if (t.ndim() != 3 || t.dim(0) != 3 || t.dim(1) != side || t.dim(2) != side)
      throw Error(path + ": expected a picture f32 [1, 3, " + std::to_string(side) + ", " + std::to_string(side) +
                  "] or [3, " + std::to_string(side) + ", " + std::to_string(side) + "] in [0, 1], got " +
                  shape_str(t.shape()));
    if (orig_h) *orig_h = side;
    if (orig_w) *orig_w = side;
    return t;
  }
  Tensor img = load_png(path);  // [3, H, W]
  if (orig_h) *orig_h = static_cast<int>(img.dim(1));
  if (orig_w) *orig_w = static_cast<int>(img.dim(2));
  return VqvaeModel::fit_image(img, side);  // [3, side, side]
}

Tensor fit_mask(const Tensor& mask_hw, int side) {
  if (mask_hw.dtype() != DType::f32 || mask_hw.ndim() != 2)
    throw Error("mask: expected f32 [H, W], got " + shape_str(mask_hw.shape()));
  const int64_t H = mask_hw.dim(0), W = mask_hw.dim(1), sq = std::min(H, W), y0 = (H - sq) / 2, x0 = (W - sq) / 2;
  Tensor out = Tensor::empty(DType::f32, {side, side});  // [side, side]
  for (int64_t i = 0; i < side; ++i)
    for (int64_t j = 0; j < side; ++j)
      out.data<float>()[i * side + j] = mask_hw.data<float>()[(y0 + i * sq / side) * W + x0 + j * sq / side];
  return out;
}

std::vector<std::string> load_class_names(const std::string& model_path, int num_classes) {
  namespace fs = std::filesystem;
  const fs::path model(model_path);
  fs::path beside = model;
  beside.replace_extension(".classes.txt");
  for (const fs::path& p : {beside, model.parent_path() / "classes.txt"}) {
    std::ifstream in(p);
    if (!in) continue;
    std::vector<std::string> names;
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (!line.empty()) names.push_back(line);
    }
    if (static_cast<int>(names.size()) == num_classes) return names;
  }
  return {};
}

}  // namespace varcode
