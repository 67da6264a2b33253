#include "kernels/cpu/resample.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace varcode::kernels::cpu {

namespace {

void check_input(const Tensor& x, int out_h, int out_w, const char* what) {
  if (x.dtype() != DType::f32 || x.ndim() != 4)
    throw Error(std::string(what) + ": input must be f32 [B, C, H, W], got " + shape_str(x.shape()));
  if (x.dim(2) <= 0 || x.dim(3) <= 0 || out_h <= 0 || out_w <= 0)
    throw Error(std::string(what) + ": empty input or output size");
}

// PyTorch's cubic convolution kernels, with its float operation order.
float cubic_convolution1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
float cubic_convolution2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

struct CubicTaps {
  std::vector<int64_t> index;  // [out, 4]
  std::vector<float> weight;   // [out, 4]
};

CubicTaps cubic_taps(int64_t in, int64_t out) {
  CubicTaps taps{std::vector<int64_t>(static_cast<size_t>(out * 4)), std::vector<float>(static_cast<size_t>(out * 4))};
  // PyTorch computes the scale in float and the source coordinate in double, rounded to float.
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float A = -0.75f;
  for (int64_t o = 0; o < out; ++o) {
    const float src = static_cast<float>(static_cast<double>(scale) * (static_cast<double>(o) + 0.5) - 0.5);
    const int64_t i0 = static_cast<int64_t>(std::floor(src));
    const float t = src - static_cast<float>(i0);
    float* w = &taps.weight[static_cast<size_t>(o * 4)];
    w[0] = cubic_convolution2(t + 1.0f, A);
    w[1] = cubic_convolution1(t, A);
    w[2] = cubic_convolution1(1.0f - t, A);
    w[3] = cubic_convolution2((1.0f - t) + 1.0f, A);
    for (int64_t j = 0; j < 4; ++j)
      taps.index[static_cast<size_t>(o * 4 + j)] = std::clamp<int64_t>(i0 - 1 + j, 0, in - 1);
  }
  return taps;
}

}  // namespace

Tensor bicubic_up(const Tensor& x, int out_h, int out_w) {
  check_input(x, out_h, out_w, "bicubic_up");
  Tensor y = Tensor::empty(DType::f32, {x.dim(0), x.dim(1), out_h, out_w});  // [B, C, out_h, out_w]
  bicubic_up(x, y);
  return y;
}

void bicubic_up(const Tensor& x, Tensor& y) {
  const int out_h = static_cast<int>(y.dim(2)), out_w = static_cast<int>(y.dim(3));
  check_input(x, out_h, out_w, "bicubic_up");
  if (y.dtype() != DType::f32 || y.ndim() != 4 || y.dim(0) != x.dim(0) || y.dim(1) != x.dim(1))
    throw Error("bicubic_up: output must be f32 [B, C, h, w] matching the input's batch and channels");
  const int64_t planes = x.dim(0) * x.dim(1), in_h = x.dim(2), in_w = x.dim(3);
  const CubicTaps ty = cubic_taps(in_h, out_h), tx = cubic_taps(in_w, out_w);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = xp + p * in_h * in_w;
    // The width pass of every input row (PyTorch's inner sum, which it recomputes per output row
    // with identical arithmetic).
    std::vector<float> rows(static_cast<size_t>(in_h * out_w));  // [in_h, out_w]
    for (int64_t r = 0; r < in_h; ++r) {
      const float* s = src + r * in_w;
      for (int64_t o = 0; o < out_w; ++o) {
        const int64_t* ix = &tx.index[static_cast<size_t>(o * 4)];
        const float* wx = &tx.weight[static_cast<size_t>(o * 4)];
        float acc = s[ix[0]] * wx[0];
        for (int j = 1; j < 4; ++j) acc += s[ix[j]] * wx[j];
        rows[static_cast<size_t>(r * out_w + o)] = acc;
      }
    }
    float* dst = yp + p * out_h * out_w;
    for (int64_t o = 0; o < out_h; ++o) {
      const int64_t* iy = &ty.index[static_cast<size_t>(o * 4)];
      const float* wy = &ty.weight[static_cast<size_t>(o * 4)];
      const float* r0 = &rows[static_cast<size_t>(iy[0] * out_w)];
      const float* r1 = &rows[static_cast<size_t>(iy[1] * out_w)];
      const float* r2 = &rows[static_cast<size_t>(iy[2] * out_w)];
      const float* r3 = &rows[static_cast<size_t>(iy[3] * out_w)];
      float* d = dst + o * out_w;
      for (int64_t c = 0; c < out_w; ++c) {
        float acc = r0[c] * wy[0];
        acc += r1[c] * wy[1];
        acc += r2[c] * wy[2];
        acc += r3[c] * wy[3];
        d[c] = acc;
      }
    }
  }
}

Tensor area_down(const Tensor& x, int out_h, int out_w) {
  check_input(x, out_h, out_w, "area_down");
  Tensor y = Tensor::empty(DType::f32, {x.dim(0), x.dim(1), out_h, out_w});  // [B, C, out_h, out_w]
  area_down(x, y);
  return y;
}

void area_down(const Tensor& x, Tensor& y) {
  const int out_h = static_cast<int>(y.dim(2)), out_w = static_cast<int>(y.dim(3));
  check_input(x, out_h, out_w, "area_down");
  if (y.dtype() != DType::f32 || y.ndim() != 4 || y.dim(0) != x.dim(0) || y.dim(1) != x.dim(1))
    throw Error("area_down: output must be f32 [B, C, h, w] matching the input's batch and channels");
  const int64_t planes = x.dim(0) * x.dim(1), in_h = x.dim(2), in_w = x.dim(3);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  auto start = [](int64_t i, int64_t out, int64_t in) { return (i * in) / out; };
  auto end = [](int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; };
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = xp + p * in_h * in_w;
    float* dst = yp + p * out_h * out_w;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const int64_t h0 = start(oh, out_h, in_h), h1 = end(oh, out_h, in_h);
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t w0 = start(ow, out_w, in_w), w1 = end(ow, out_w, in_w);
        float sum = 0.0f;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) sum += src[ih * in_w + iw];
        // PyTorch divides by the two extents in turn, not by their product.
        dst[oh * out_w + ow] = sum / static_cast<float>(h1 - h0) / static_cast<float>(w1 - w0);
      }
    }
  }
}

}  // namespace varcode::kernels::cpu
