#include "varcode/image_io.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "io/npy.hpp"
#include "io/png.hpp"

namespace varcode {

Tensor load_npy(const std::string& path) { return io::read_npy(path); }
void save_npy(const std::string& path, const Tensor& t) { io::write_npy(path, t); }

namespace {
void check_images(const Tensor& images, const std::string& what) {
  if (images.dtype() != DType::f32 || images.ndim() != 4 || images.dim(1) != 3)
    throw Error(what + ": expected f32 images [B, 3, H, W], got " + std::string(dtype_name(images.dtype())) + " " +
                shape_str(images.shape()));
}

// Keys-style cubic with a = -0.5 (PIL's BICUBIC).
double cubic(double x) {
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

// Resamples one axis of a [C, H, W] f32 image (antialiased when shrinking: the kernel widens
// by the scale factor, as PIL does).
std::vector<float> resample_axis(const std::vector<float>& src, int c, int h, int w, int out_len, bool along_w) {
  const int in_len = along_w ? w : h;
  const double scale = static_cast<double>(in_len) / out_len;
  const double support = 2.0 * std::max(scale, 1.0);
  const double fscale = std::max(scale, 1.0);
  const int oh = along_w ? h : out_len, ow = along_w ? out_len : w;
  std::vector<float> dst(static_cast<size_t>(c) * oh * ow);
  for (int o = 0; o < out_len; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    const int hi = std::min(in_len, static_cast<int>(std::ceil(center + support)));
    std::vector<double> wts;
    double total = 0;
    for (int i = lo; i < hi; ++i) {
      const double wv = cubic((i + 0.5 - center) / fscale);
      wts.push_back(wv);
      total += wv;
    }
    for (int ch = 0; ch < c; ++ch) {
      const int other = along_w ? h : w;
      for (int k = 0; k < other; ++k) {
        double acc = 0;
        for (int i = lo; i < hi; ++i) {
          const float v = along_w ? src[(static_cast<size_t>(ch) * h + k) * w + i] : src[(static_cast<size_t>(ch) * h + i) * w + k];
          acc += wts[static_cast<size_t>(i - lo)] * v;
        }
        const float r = static_cast<float>(std::clamp(acc / total, 0.0, 1.0));
        if (along_w)
          dst[(static_cast<size_t>(ch) * oh + k) * ow + o] = r;
        else
          dst[(static_cast<size_t>(ch) * oh + o) * ow + k] = r;
      }
    }
  }
  return dst;
}
}  // namespace

void save_png_grid(const std::string& path, const Tensor& images) {
  check_images(images, path);
  const int64_t B = images.dim(0), H = images.dim(2), W = images.dim(3);
  const int64_t cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(B))));
  const int64_t rows = (B + cols - 1) / cols;
  io::Image8 grid;
  grid.width = static_cast<int>(cols * W);
  grid.height = static_cast<int>(rows * H);
  grid.rgb.assign(static_cast<size_t>(grid.width) * grid.height * 3, 0);
  for (int64_t b = 0; b < B; ++b) {
    io::Image8 one = io::image_from_chw(images.data<float>() + b * 3 * H * W, static_cast<int>(H), static_cast<int>(W));
    const int64_t oy = (b / cols) * H, ox = (b % cols) * W;
    for (int64_t y = 0; y < H; ++y)
      std::copy_n(one.rgb.data() + y * W * 3, W * 3, grid.rgb.data() + ((oy + y) * grid.width + ox) * 3);
  }
  io::write_png(path, grid);
}

void save_pngs(const std::string& dir, const Tensor& images, const std::vector<std::string>& names) {
  check_images(images, dir);
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

Tensor load_png(const std::string& path) {
  io::Image8 img = io::read_png(path);
  const int64_t H = img.height, W = img.width;
  Tensor t = Tensor::empty(DType::f32, {1, 3, H, W});  // [1, 3, H, W]
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < H * W; ++i) t.data<float>()[c * H * W + i] = img.rgb[static_cast<size_t>(i * 3 + c)] / 255.0f;
  return t;
}

Tensor load_picture(const std::string& path, int size) {
  const bool is_npy = path.size() >= 4 && path.compare(path.size() - 4, 4, ".npy") == 0;
  if (is_npy) {
    Tensor t = io::read_npy(path);
    if (t.dtype() != DType::f32) t = t.to(DType::f32);
    if (t.ndim() == 3) t = t.reshape({1, t.dim(0), t.dim(1), t.dim(2)});
    if (t.ndim() != 4 || t.dim(0) != 1 || t.dim(1) != 3 || t.dim(2) != size || t.dim(3) != size)
      throw Error(path + ": expected a picture f32 [1, 3, " + std::to_string(size) + ", " + std::to_string(size) +
                  "] or [3, " + std::to_string(size) + ", " + std::to_string(size) + "] in [0, 1], got " +
                  shape_str(t.shape()));
    return t;
  }
  Tensor img = load_png(path);  // [1, 3, H, W]
  const int H = static_cast<int>(img.dim(2)), W = static_cast<int>(img.dim(3));
  const int side = std::min(H, W), y0 = (H - side) / 2, x0 = (W - side) / 2;
  std::vector<float> crop(static_cast<size_t>(3) * side * side);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x)
        crop[(static_cast<size_t>(c) * side + y) * side + x] = img.data<float>()[(static_cast<int64_t>(c) * H + y0 + y) * W + x0 + x];
  if (side != size) {
    crop = resample_axis(crop, 3, side, side, size, /*along_w=*/true);
    crop = resample_axis(crop, 3, side, size, size, /*along_w=*/false);
  }
  Tensor out = Tensor::empty(DType::f32, {1, 3, size, size});  // [1, 3, size, size]
  std::copy(crop.begin(), crop.end(), out.data<float>());
  return out;
}

void set_num_threads(int n) {
  if (n < 0) throw Error("--threads must be >= 0, got " + std::to_string(n));
  if (n == 0) {
    // 0 = all cores, unless the user chose with OMP_NUM_THREADS.
    if (std::getenv("OMP_NUM_THREADS")) return;
    n = omp_get_num_procs();
  }
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace varcode
