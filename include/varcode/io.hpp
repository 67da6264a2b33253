// varcode public API: the file formats the command-line tool reads and writes.
// Every write is atomic (a temporary file renamed into place): on error no
// partial file is left behind.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

namespace varcode {

// NumPy .npy: '<f4', '<i8', '<f2' arrays in C order.
Tensor load_npy(const std::string& path);
// f32 or i64 tensors.
void save_npy(const std::string& path, const Tensor& t);

// Any PNG -> f32 [3, H, W] in [0, 1] (value / 255).
Tensor load_png(const std::string& path);
// f32 [3, H, W] in [0, 1] -> 8-bit RGB PNG (clamped, x * 255 truncated, as the
// reference scripts).
void save_png(const std::string& path, const Tensor& img_chw);

// A PNG as 8-bit RGB bytes [H, W, 3] (palette expanded, gray replicated, alpha
// dropped). The whole file is decoded, so a truncated or corrupt PNG throws
// Error.
struct Rgb8Image {
  int height = 0, width = 0;
  std::vector<uint8_t> rgb;  // [H, W, 3]
};
Rgb8Image load_png_rgb8(const std::string& path);

// The same in memory (for a server's answers and uploads): encode_png gives exactly the bytes
// save_png writes; decode_png reads as load_png does, `what` naming the source in errors.
std::vector<uint8_t> encode_png(const Tensor& img_chw);
Tensor decode_png(const uint8_t* data, size_t size, const std::string& what);

// A text file (e.g. a JSON record), written atomically.
void save_text(const std::string& path, const std::string& text);

// A NumPy .npz holding one uint8 array `name` of `shape` (C order), as
// numpy.savez writes it (a zip of `<name>.npy`, stored, ZIP64 beyond 4 GiB),
// written atomically and streamed: fill(i, dst) is called for item i = 0, 1,
// ... along axis 0 in order and writes its prod(shape[1:]) bytes to dst, so the
// array is never in memory whole. An exception from fill aborts the write.
void save_npz_u8(const std::string& path, const std::string& name, const std::vector<int64_t>& shape,
                 const std::function<void(int64_t item, uint8_t* dst)>& fill);

// f32 [B, 3, H, W] -> one [3, rows * H, cols * W] grid, cols = ceil(sqrt(B))
// unless given (> 0), rows = ceil(B / cols), images in row-major order, empty
// cells black; B = 1 gives the image itself.
Tensor image_grid(const Tensor& images, int64_t cols = 0);

// Human-readable class names for a model file: `<file without
// .pth>.classes.txt` beside it, else `classes.txt` in its directory; one name
// per line. A file whose line count differs from `num_classes` is not for this
// model and is ignored. Empty when there is none.
std::vector<std::string> load_class_names(const std::string& model_path, int num_classes);

// DIR/<names[i]>.png for each image of [B, 3, H, W] (DIR/000000.png ... when
// names is empty); the directory is created.
void save_pngs(const std::string& dir, const Tensor& images, const std::vector<std::string>& names = {});

// A picture for the VQ-VAE at `side` pixels: a PNG of any size goes through
// VqvaeModel::fit_image (centre crop, area filter when shrinking, bicubic when
// enlarging); an .npy must be f32 [1, 3, side, side] or [3, side, side] in [0,
// 1] and is used as it is. Returns [3, side, side] in [0, 1]. `orig_h`/`orig_w`
// (optional) receive the file's size.
Tensor load_picture(const std::string& path, int side, int* orig_h = nullptr, int* orig_w = nullptr);
// A mask [H, W] at a picture's original resolution -> [side, side] by the same
// centre crop as fit_image, then nearest sampling.
Tensor fit_mask(const Tensor& mask_hw, int side);

}  // namespace varcode
