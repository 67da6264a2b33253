#include "io/png.hpp"

#include <png.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "io/atomic_file.hpp"

namespace varcode::io {

namespace {
struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};

[[noreturn]] void png_fail(png_structp png, png_const_charp msg) {
  (void)png;
  throw Error(std::string("libpng: ") + msg);
}
void png_warn(png_structp, png_const_charp) {}
}  // namespace

Image8 read_png(const std::string& path) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open the picture");
  unsigned char sig[8] = {};
  if (std::fread(sig, 1, 8, f.get()) != 8 || png_sig_cmp(sig, 0, 8) != 0)
    throw Error(path + ": not a PNG file");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_fail, png_warn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error(path + ": out of memory reading the PNG");
  }
  Image8 img;
  try {
    png_init_io(png, f.get());
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w == 0 || h == 0 || w > 32768 || h > 32768)
      throw Error("size " + std::to_string(w) + "x" + std::to_string(h) + " is outside 1..32768");
    const int color = png_get_color_type(png, info);
    if (png_get_bit_depth(png, info) == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3) throw Error("unexpected row layout");
    img.width = static_cast<int>(w);
    img.height = static_cast<int>(h);
    img.rgb.resize(static_cast<size_t>(w) * h * 3);
    std::vector<png_bytep> rows(h);
    for (png_uint_32 y = 0; y < h; ++y) rows[y] = img.rgb.data() + static_cast<size_t>(y) * w * 3;
    png_read_image(png, rows.data());
    png_read_end(png, nullptr);
  } catch (const Error& e) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path + ": cannot read the PNG: " + e.what());
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return img;
}

void write_png(const std::string& path, const Image8& img) {
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3)
    throw Error(path + ": internal: malformed image buffer");
  write_atomically(path, [&](const std::string& tmp) {
    std::unique_ptr<FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
    if (!f) throw Error(path + ": cannot write the PNG");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_fail, png_warn);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!info) {
      png_destroy_write_struct(&png, nullptr);
      throw Error(path + ": out of memory writing the PNG");
    }
    try {
      png_init_io(png, f.get());
      png_set_IHDR(png, info, static_cast<png_uint_32>(img.width), static_cast<png_uint_32>(img.height), 8,
                   PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
      png_write_info(png, info);
      for (int y = 0; y < img.height; ++y)
        png_write_row(png, const_cast<png_bytep>(img.rgb.data() + static_cast<size_t>(y) * img.width * 3));
      png_write_end(png, nullptr);
    } catch (const Error& e) {
      png_destroy_write_struct(&png, &info);
      throw Error(path + ": cannot write the PNG: " + e.what());
    }
    png_destroy_write_struct(&png, &info);
    if (std::fflush(f.get()) != 0) throw Error(path + ": write failed (disk full?)");
  });
}

Image8 image_from_chw(const float* chw, int height, int width) {
  Image8 img;
  img.width = width;
  img.height = height;
  img.rgb.resize(static_cast<size_t>(width) * height * 3);
  const size_t plane = static_cast<size_t>(width) * height;
  for (size_t i = 0; i < plane; ++i)
    for (size_t c = 0; c < 3; ++c) {
      const float v = std::clamp(chw[c * plane + i], 0.0f, 1.0f);
      img.rgb[i * 3 + c] = static_cast<uint8_t>(v * 255.0f);
    }
  return img;
}

}  // namespace varcode::io
