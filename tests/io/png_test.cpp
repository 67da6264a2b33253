#include "io/png.hpp"

#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <cstring>

#include "io_test_util.hpp"

namespace varcode::io {
namespace {

// Encodes `buffer` in any libpng "simplified API" format, for the reader to convert.
void write_format(const std::string& path, int w, int h, png_uint_32 format, const void* buffer,
                  const void* colormap = nullptr, int colormap_entries = 0) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(w);
  image.height = static_cast<png_uint_32>(h);
  image.format = format;
  image.colormap_entries = static_cast<png_uint_32>(colormap_entries);
  ASSERT_TRUE(png_image_write_to_file(&image, path.c_str(), 0, buffer, 0, colormap)) << image.message;
}

TEST(Png, RoundTripRgb) {
  TempDir dir;
  Image8 img;
  img.width = 5;
  img.height = 3;
  for (int i = 0; i < 45; ++i) img.rgb.push_back(static_cast<uint8_t>(i * 5 + 1));
  write_png(dir.path("a.png"), img);
  Image8 back = read_png(dir.path("a.png"));
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.height, 3);
  EXPECT_EQ(back.rgb, img.rgb);
  Image8 bad;
  bad.width = 2;
  bad.height = 2;
  bad.rgb.resize(5);
  expect_error([&] { write_png(dir.path("b.png"), bad); }, {"b.png", "expected width*height*3"});
  EXPECT_FALSE(std::filesystem::exists(dir.path("b.png")));
}

TEST(Png, ConvertsOtherColourTypes) {
  TempDir dir;
  const uint8_t gray[4] = {0, 100, 200, 255};
  write_format(dir.path("g.png"), 2, 2, PNG_FORMAT_GRAY, gray);
  Image8 g = read_png(dir.path("g.png"));
  EXPECT_EQ(g.rgb, (std::vector<uint8_t>{0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255}));

  const uint8_t rgba[8] = {10, 20, 30, 255, 40, 50, 60, 255};
  write_format(dir.path("a.png"), 2, 1, PNG_FORMAT_RGBA, rgba);
  EXPECT_EQ(read_png(dir.path("a.png")).rgb, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60}));

  const uint8_t ga[4] = {7, 255, 9, 255};
  write_format(dir.path("ga.png"), 2, 1, PNG_FORMAT_GA, ga);
  EXPECT_EQ(read_png(dir.path("ga.png")).rgb, (std::vector<uint8_t>{7, 7, 7, 9, 9, 9}));

  const uint16_t deep[6] = {0, 257 * 128, 65535, 257 * 3, 257 * 4, 257 * 5};  // 16-bit
  write_format(dir.path("d.png"), 2, 1, PNG_FORMAT_LINEAR_RGB, deep);
  Image8 d = read_png(dir.path("d.png"));
  EXPECT_EQ(d.rgb, (std::vector<uint8_t>{0, 128, 255, 3, 4, 5}));

  const uint8_t cmap[6] = {1, 2, 3, 250, 251, 252};
  const uint8_t idx[3] = {1, 0, 1};
  write_format(dir.path("p.png"), 3, 1, PNG_FORMAT_RGB_COLORMAP, idx, cmap, 2);
  EXPECT_EQ(read_png(dir.path("p.png")).rgb, (std::vector<uint8_t>{250, 251, 252, 1, 2, 3, 250, 251, 252}));
}

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string chunk(const std::string& type, const std::string& body) {
  return be32(static_cast<uint32_t>(body.size())) + type + body + be32(crc32(type + body));
}

TEST(Png, BadFiles) {
  TempDir dir;
  Image8 img;
  img.width = img.height = 16;
  img.rgb.assign(16 * 16 * 3, 77);
  write_png(dir.path("ok.png"), img);
  const std::string good = read_bytes(dir.path("ok.png"));
  const std::string cut = dir.path("cut.png");
  write_bytes(cut, good.substr(0, good.size() / 2));
  expect_error([&] { read_png(cut); }, {cut, "bad PNG"});
  const std::string txt = dir.path("x.png");
  write_bytes(txt, "definitely not a png");
  expect_error([&] { read_png(txt); }, {txt, "bad signature"});
  // A valid 65535 x 65535 header in a tiny file must not allocate 12 GB.
  const std::string huge = dir.path("huge.png");
  write_bytes(huge, std::string("\x89PNG\r\n\x1a\n", 8) +
                        chunk("IHDR", be32(65535) + be32(65535) + std::string("\x08\x02\x00\x00\x00", 5)) +
                        chunk("IDAT", "") + chunk("IEND", ""));
  expect_error([&] { read_png(huge); }, {huge, "implausibly large"});
  expect_error([&] { read_png(dir.path("none.png")); }, {"none.png", "cannot open"});
}

TEST(Png, ImageFromChwClampsAndTruncates) {
  const float chw[3 * 6] = {-1,  0,          0.5f,  0.999f, 1,    2,   // R
                            NAN, 1.0f / 255, 0.75f, 0.25f,  0.1f, 3,   // G
                            0,   0,          0,     0,      0,    0};  // B
  Image8 img = image_from_chw(chw, 2, 3);
  EXPECT_EQ(img.width, 3);
  EXPECT_EQ(img.height, 2);
  std::vector<uint8_t> r, g;
  for (int i = 0; i < 6; ++i)
    r.push_back(img.rgb[static_cast<size_t>(i) * 3]), g.push_back(img.rgb[static_cast<size_t>(i) * 3 + 1]);
  EXPECT_EQ(r, (std::vector<uint8_t>{0, 0, 127, 254, 255, 255}));
  EXPECT_EQ(g, (std::vector<uint8_t>{0, 1, 191, 63, 25, 255}));
}

}  // namespace
}  // namespace varcode::io
