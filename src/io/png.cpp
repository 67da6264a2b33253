// PNG via libpng. Reading uses the classic API (every colour type and depth, converted to 8-bit
// RGB); libpng reports errors by longjmp, so the setjmp frames below hold only trivial locals.
#include "io/png.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "io/atomic_file.hpp"
#include "io/mapped_file.hpp"

namespace varcode::io {

namespace {

struct ReadCtx {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
  char msg[256] = {0};
};

void on_error(png_structp png, png_const_charp msg) {
  auto* c = static_cast<ReadCtx*>(png_get_error_ptr(png));
  std::snprintf(c->msg, sizeof c->msg, "%s", msg);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, size_t n) {
  auto* c = static_cast<ReadCtx*>(png_get_io_ptr(png));
  if (n > c->size - c->pos) png_error(png, "unexpected end of file");
  std::memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

// Reads the header and sets up the conversions to 8-bit RGB.
bool read_header(ReadCtx* c, png_uint_32* w, png_uint_32* h, size_t* rowbytes) {
  if (setjmp(png_jmpbuf(c->png))) return false;
  png_set_read_fn(c->png, c, on_read);
  png_set_user_limits(c->png, 1u << 16, 1u << 16);
  png_read_info(c->png, c->info);
  const int color = png_get_color_type(c->png, c->info);
  png_set_expand(c->png);  // palette -> RGB, gray < 8 bit -> 8 bit, tRNS -> alpha
  png_set_scale_16(c->png);
  if (color & PNG_COLOR_MASK_ALPHA || png_get_valid(c->png, c->info, PNG_INFO_tRNS)) png_set_strip_alpha(c->png);
  if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(c->png);
  png_set_interlace_handling(c->png);
  png_read_update_info(c->png, c->info);
  *w = png_get_image_width(c->png, c->info);
  *h = png_get_image_height(c->png, c->info);
  *rowbytes = png_get_rowbytes(c->png, c->info);
  return true;
}

bool read_rows(ReadCtx* c, png_bytepp rows) {
  if (setjmp(png_jmpbuf(c->png))) return false;
  png_read_image(c->png, rows);
  png_read_end(c->png, nullptr);
  return true;
}

struct ReadGuard {
  ReadCtx* c;
  ~ReadGuard() { png_destroy_read_struct(&c->png, c->info ? &c->info : nullptr, nullptr); }
};

}  // namespace

Image8 read_png(const std::string& path) {
  auto m = MappedFile::open(path);
  return decode_png(m->data(), m->size(), path);
}

Image8 decode_png(const uint8_t* data, size_t size, const std::string& path) {
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) throw Error(path + ": not a PNG file (bad signature)");
  ReadCtx c;
  c.data = data;
  c.size = size;
  c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
  if (!c.png) throw Error(path + ": cannot initialise libpng");
  ReadGuard guard{&c};
  c.info = png_create_info_struct(c.png);
  if (!c.info) throw Error(path + ": cannot initialise libpng");
  png_uint_32 w = 0, h = 0;
  size_t rowbytes = 0;
  if (!read_header(&c, &w, &h, &rowbytes)) throw Error(path + ": bad PNG: " + c.msg);
  // Deflate expands at most ~1032:1 and a pixel takes at least one bit: a larger claimed image
  // cannot be real, so do not allocate for it.
  const uint64_t pixels = uint64_t{w} * h;
  if (pixels > (uint64_t{1} << 28) || pixels > std::max<uint64_t>(uint64_t{size} * 8 * 1032, 1 << 20))
    throw Error(path + ": PNG of " + std::to_string(w) + "x" + std::to_string(h) + " is implausibly large for its " +
                std::to_string(size) + " bytes");
  if (rowbytes != size_t{w} * 3) throw Error(path + ": PNG could not be converted to 8-bit RGB");
  Image8 img;
  img.width = static_cast<int>(w);
  img.height = static_cast<int>(h);
  img.rgb.resize(pixels * 3);
  std::vector<png_bytep> rows(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = img.rgb.data() + size_t{y} * rowbytes;
  if (!read_rows(&c, rows.data())) throw Error(path + ": bad PNG: " + c.msg);
  return img;
}

void write_png(const std::string& path, const Image8& img) {
  const std::vector<uint8_t> bytes = encode_png(img, path);
  write_file_atomically(path, bytes.data(), bytes.size());
}

std::vector<uint8_t> encode_png(const Image8& img, const std::string& path) {
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != size_t(img.width) * size_t(img.height) * 3)
    throw Error(path + ": cannot write a " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                " PNG from " + std::to_string(img.rgb.size()) + " bytes (expected width*height*3)");
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(img.width);
  image.height = static_cast<png_uint_32>(img.height);
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t bytes = 0;
  if (!png_image_write_to_memory(&image, nullptr, &bytes, 0, img.rgb.data(), 0, nullptr))
    throw Error(path + ": PNG encoding failed: " + image.message);
  std::vector<uint8_t> out(bytes);
  if (!png_image_write_to_memory(&image, out.data(), &bytes, 0, img.rgb.data(), 0, nullptr))
    throw Error(path + ": PNG encoding failed: " + image.message);
  png_image_free(&image);
  out.resize(bytes);
  return out;
}

void chw_to_rgb8(const float* chw, int height, int width, uint8_t* dst) {
  const size_t plane = size_t(height) * size_t(width);
  for (size_t i = 0; i < plane; ++i)
    for (size_t c = 0; c < 3; ++c) {
      float v = chw[c * plane + i];
      v = std::isnan(v) ? 0.0f : std::clamp(v, 0.0f, 1.0f);
      dst[i * 3 + c] = static_cast<uint8_t>(v * 255.0f);
    }
}

Image8 image_from_chw(const float* chw, int height, int width) {
  Image8 img;
  img.width = width;
  img.height = height;
  img.rgb.resize(size_t(height) * size_t(width) * 3);
  chw_to_rgb8(chw, height, width, img.rgb.data());
  return img;
}

}  // namespace varcode::io
