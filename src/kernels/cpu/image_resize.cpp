#include "kernels/cpu/image_resize.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/resample.hpp"

namespace varcode::kernels::cpu {

namespace {

void check_chw(const Tensor& x, const char* what) {
  if (x.dtype() != DType::f32 || x.ndim() != 3 || x.dim(1) <= 0 || x.dim(2) <= 0)
    throw Error(std::string(what) + ": expected a non-empty f32 [C, H, W] image, got " + shape_str(x.shape()));
}

// For each output pixel, the input pixels it covers and the fraction of it each one fills.
struct BoxTaps {
  std::vector<int64_t> first;               // [out]
  std::vector<std::vector<double>> weight;  // [out][taps]
};

BoxTaps box_taps(int64_t in, int64_t out) {
  BoxTaps t{std::vector<int64_t>(static_cast<size_t>(out)), std::vector<std::vector<double>>(static_cast<size_t>(out))};
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t o = 0; o < out; ++o) {
    const double a = static_cast<double>(o) * scale, b = static_cast<double>(o + 1) * scale;
    t.first[static_cast<size_t>(o)] = static_cast<int64_t>(a);
    for (int64_t i = static_cast<int64_t>(a); i < in && static_cast<double>(i) < b; ++i) {
      const double cover = std::min(b, static_cast<double>(i + 1)) - std::max(a, static_cast<double>(i));
      t.weight[static_cast<size_t>(o)].push_back(std::max(cover, 0.0) / scale);
    }
  }
  return t;
}

}  // namespace

Tensor center_crop_square(const Tensor& x) {
  check_chw(x, "center_crop_square");
  const int64_t C = x.dim(0), H = x.dim(1), W = x.dim(2), S = std::min(H, W);
  const int64_t top = (H - S) / 2, left = (W - S) / 2;
  Tensor y = Tensor::empty(DType::f32, {C, S, S});  // [C, S, S]
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < S; ++r)
      std::memcpy(y.data<float>() + (c * S + r) * S, x.data<float>() + (c * H + top + r) * W + left,
                  sizeof(float) * static_cast<size_t>(S));
  return y;
}

Tensor resize_area(const Tensor& x, int out_h, int out_w) {
  check_chw(x, "resize_area");
  if (out_h <= 0 || out_w <= 0) throw Error("resize_area: empty output size");
  const int64_t C = x.dim(0), H = x.dim(1), W = x.dim(2);
  const BoxTaps ty = box_taps(H, out_h), tx = box_taps(W, out_w);
  Tensor y = Tensor::empty(DType::f32, {C, out_h, out_w});  // [C, out_h, out_w]
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double> rows(static_cast<size_t>(H * out_w), 0.0);  // [H, out_w]: the width pass
    const float* src = x.data<float>() + c * H * W;
    for (int64_t r = 0; r < H; ++r)
      for (int64_t o = 0; o < out_w; ++o) {
        const auto& w = tx.weight[static_cast<size_t>(o)];
        const float* s = src + r * W + tx.first[static_cast<size_t>(o)];
        double acc = 0;
        for (size_t i = 0; i < w.size(); ++i) acc += w[i] * s[i];
        rows[static_cast<size_t>(r * out_w + o)] = acc;
      }
    float* dst = y.data<float>() + c * out_h * out_w;
    for (int64_t o = 0; o < out_h; ++o) {
      const auto& w = ty.weight[static_cast<size_t>(o)];
      const double* base = rows.data() + ty.first[static_cast<size_t>(o)] * out_w;
      for (int64_t j = 0; j < out_w; ++j) {
        double acc = 0;
        for (size_t i = 0; i < w.size(); ++i) acc += w[i] * base[static_cast<int64_t>(i) * out_w + j];
        dst[o * out_w + j] = static_cast<float>(acc);
      }
    }
  }
  return y;
}

Tensor fit_square(const Tensor& x, int side, float lo, float hi) {
  if (side <= 0) throw Error("fit_square: side must be positive");
  Tensor sq = center_crop_square(x);  // [C, S, S]
  const int64_t S = sq.dim(1);
  if (S == side) return sq;
  if (S > side) return resize_area(sq, side, side);
  Tensor up = bicubic_up(sq.reshape({1, sq.dim(0), S, S}), side, side);  // [1, C, side, side]
  float* p = up.data<float>();
  for (int64_t i = 0; i < up.numel(); ++i) p[i] = std::clamp(p[i], lo, hi);
  return up.reshape({sq.dim(0), side, side});
}

}  // namespace varcode::kernels::cpu
