// The latent maps' layout changes, PyTorch's bicubic and area resampling, and the elementwise
// updates of f_hat and the pictures. Each output runs the CPU kernel's float operations in its
// order (kernels/cpu/resample.cpp, cpu_backend.cpp); the _rn intrinsics keep nvcc from fusing a
// product and a sum into one FMA, which the CPU (x86-64 without -march) never does, so the
// results are the CPU's bits.
#include <algorithm>
#include <string>

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_context.hpp"

namespace varcode::kernels::cuda {

namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(blocks_for(n, kThreads), 1 << 16)); }

__device__ inline int64_t thread_index() { return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; }
__device__ inline int64_t thread_count() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// y[b, c, p] = x[b, p, c] (to_channel_major) or the reverse; both are a [B, rows, cols] -> [B, cols, rows]
// transpose, one thread per output value.
__global__ void transpose_planes(const float* x, int64_t batch, int64_t rows, int64_t cols, float* y) {
  const int64_t n = batch * rows * cols;
  for (int64_t o = thread_index(); o < n; o += thread_count()) {
    const int64_t r = o % rows, c = (o / rows) % cols, b = o / (rows * cols);
    y[o] = x[(b * rows + r) * cols + c];
  }
}

// PyTorch's cubic convolution kernels (A = -0.75) with its float operation order.
constexpr float kA = -0.75f;
__device__ inline float cubic_convolution1(float x) {  // ((A + 2) * x - (A + 3)) * x * x + 1
  return __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(__fmul_rn(kA + 2, x), kA + 3), x), x), 1.0f);
}
__device__ inline float cubic_convolution2(float x) {  // ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
  return __fsub_rn(__fmul_rn(__fadd_rn(__fmul_rn(__fsub_rn(__fmul_rn(kA, x), 5 * kA), x), 8 * kA), x), 4 * kA);
}

// The four taps of output coordinate o (CubicTaps in resample.cpp): src in double rounded to
// float, i0 = floor(src), weights of t = src - i0, indices clamped into the input.
__device__ inline void cubic_taps(int64_t o, int64_t in, float scale, int64_t index[4], float weight[4]) {
  const float src =
      __double2float_rn(__dadd_rn(__dmul_rn(static_cast<double>(scale), static_cast<double>(o) + 0.5), -0.5));
  const int64_t i0 = static_cast<int64_t>(floorf(src));
  const float t = __fsub_rn(src, static_cast<float>(i0));
  weight[0] = cubic_convolution2(__fadd_rn(t, 1.0f));
  weight[1] = cubic_convolution1(t);
  weight[2] = cubic_convolution1(__fsub_rn(1.0f, t));
  weight[3] = cubic_convolution2(__fadd_rn(__fsub_rn(1.0f, t), 1.0f));
  for (int j = 0; j < 4; ++j) index[j] = min(max(i0 - 1 + j, static_cast<int64_t>(0)), in - 1);
}

// One thread per output value: the width taps of the four input rows, then the height taps, each
// sum in tap order (the CPU's rows pass, then its columns pass).
__global__ void bicubic_planes(const float* x, int64_t planes, int64_t in_h, int64_t in_w, float scale_h, float scale_w,
                               int64_t out_h, int64_t out_w, float* y) {
  const int64_t n = planes * out_h * out_w;
  for (int64_t o = thread_index(); o < n; o += thread_count()) {
    const int64_t ox = o % out_w, oy = (o / out_w) % out_h, p = o / (out_w * out_h);
    int64_t ix[4], iy[4];
    float wx[4], wy[4];
    cubic_taps(ox, in_w, scale_w, ix, wx);
    cubic_taps(oy, in_h, scale_h, iy, wy);
    const float* src = x + p * in_h * in_w;  // [in_h, in_w]
    float acc = 0;
    for (int j = 0; j < 4; ++j) {
      const float* s = src + iy[j] * in_w;
      float r = __fmul_rn(s[ix[0]], wx[0]);
      for (int k = 1; k < 4; ++k) r = __fadd_rn(r, __fmul_rn(s[ix[k]], wx[k]));
      acc = j == 0 ? __fmul_rn(r, wy[0]) : __fadd_rn(acc, __fmul_rn(r, wy[j]));
    }
    y[o] = acc;
  }
}

// Adaptive average pooling: output i averages inputs [floor(i * in / out), ceil((i + 1) * in / out)),
// summed row by row and divided by the two extents in turn, as PyTorch (and the CPU) do.
__global__ void area_planes(const float* x, int64_t planes, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w,
                            float* y) {
  const int64_t n = planes * out_h * out_w;
  for (int64_t o = thread_index(); o < n; o += thread_count()) {
    const int64_t ow = o % out_w, oh = (o / out_w) % out_h, p = o / (out_w * out_h);
    const int64_t h0 = (oh * in_h) / out_h, h1 = ((oh + 1) * in_h + out_h - 1) / out_h;
    const int64_t w0 = (ow * in_w) / out_w, w1 = ((ow + 1) * in_w + out_w - 1) / out_w;
    const float* src = x + p * in_h * in_w;  // [in_h, in_w]
    float sum = 0.0f;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) sum = __fadd_rn(sum, src[ih * in_w + iw]);
    y[o] = __fdiv_rn(__fdiv_rn(sum, static_cast<float>(h1 - h0)), static_cast<float>(w1 - w0));
  }
}

__global__ void axpby_values(float a, const float* x, float b, const float* y, int64_t n, float* out) {
  for (int64_t i = thread_index(); i < n; i += thread_count())
    out[i] = __fadd_rn(__fmul_rn(x[i], a), __fmul_rn(y[i], b));
}

// f_hat [B, C, PP] toward gt [C, PP] where keep [PP] says so.
__global__ void blend_values(float* f_hat, const float* gt, const float* keep, int64_t batch, int64_t c, int64_t pp) {
  const int64_t n = batch * c * pp;
  for (int64_t i = thread_index(); i < n; i += thread_count()) {
    const int64_t p = i % pp, ch = (i / pp) % c;
    const float k = keep[p];
    f_hat[i] = __fadd_rn(__fmul_rn(f_hat[i], __fsub_rn(1.0f, k)), __fmul_rn(gt[ch * pp + p], k));
  }
}

__global__ void add_mul_values(const float* x, int64_t n, float add, float mul, float* out) {
  for (int64_t i = thread_index(); i < n; i += thread_count()) out[i] = __fmul_rn(__fadd_rn(x[i], add), mul);
}

void check_map(const CudaBackend& be, const Tensor& t, int ndim, const char* op, const char* which) {
  if (t.device() != be.device())
    throw Error(std::string("internal: cuda ") + op + ": the " + which + " is on " + device_name(t.device()));
  if (t.dtype() != DType::f32 || t.ndim() != ndim)
    throw Error(std::string(op) + ": the " + which + " must be f32 with " + std::to_string(ndim) + " dimensions, got " +
                dtype_name(t.dtype()) + " " + shape_str(t.shape()));
}

void check_resample(const CudaBackend& be, const Tensor& x, const Tensor& y, const char* op) {
  check_map(be, x, 4, op, "input");
  check_map(be, y, 4, op, "output");
  if (y.dim(0) != x.dim(0) || y.dim(1) != x.dim(1))
    throw Error(std::string(op) + ": output " + shape_str(y.shape()) + " does not match the input " +
                shape_str(x.shape()) + "'s batch and channels");
  if (x.dim(2) <= 0 || x.dim(3) <= 0 || y.dim(2) <= 0 || y.dim(3) <= 0)
    throw Error(std::string(op) + ": empty input or output size");
}

}  // namespace

void CudaBackend::to_channel_major(const Tensor& x_BlC, Tensor& y_BChw) const {
  enter();
  check_map(*this, x_BlC, 3, "to_channel_major", "input");
  check_map(*this, y_BChw, 4, "to_channel_major", "output");
  const int64_t B = x_BlC.dim(0), L = x_BlC.dim(1), C = x_BlC.dim(2);
  if (y_BChw.dim(0) != B || y_BChw.dim(1) != C || y_BChw.dim(2) * y_BChw.dim(3) != L)
    throw Error("to_channel_major: output " + shape_str(y_BChw.shape()) + " does not hold the input " +
                shape_str(x_BlC.shape()));
  if (B * L * C == 0) return;
  // [B, L, C] -> [B, C, L]
  transpose_planes<<<grid_for(B * L * C), kThreads, 0, stream()>>>(x_BlC.data<float>(), B, L, C, y_BChw.data<float>());
  VARCODE_CUDA_LAUNCHED("transpose_planes");
}

void CudaBackend::to_token_major(const Tensor& x_BChw, Tensor& y_BlC) const {
  enter();
  check_map(*this, x_BChw, 4, "to_token_major", "input");
  check_map(*this, y_BlC, 3, "to_token_major", "output");
  const int64_t B = x_BChw.dim(0), C = x_BChw.dim(1), L = x_BChw.dim(2) * x_BChw.dim(3);
  if (y_BlC.dim(0) != B || y_BlC.dim(1) != L || y_BlC.dim(2) != C)
    throw Error("to_token_major: output " + shape_str(y_BlC.shape()) + " does not hold the input " +
                shape_str(x_BChw.shape()));
  if (B * L * C == 0) return;
  // [B, C, L] -> [B, L, C]
  transpose_planes<<<grid_for(B * L * C), kThreads, 0, stream()>>>(x_BChw.data<float>(), B, C, L, y_BlC.data<float>());
  VARCODE_CUDA_LAUNCHED("transpose_planes");
}

void CudaBackend::bicubic_resize(const Tensor& x, Tensor& y) const {
  enter();
  check_resample(*this, x, y, "bicubic_resize");
  const int64_t planes = x.dim(0) * x.dim(1), in_h = x.dim(2), in_w = x.dim(3), out_h = y.dim(2), out_w = y.dim(3);
  if (planes == 0) return;
  // PyTorch's scale is a float quotient; the host's division is the CPU kernel's.
  const float scale_h = static_cast<float>(in_h) / static_cast<float>(out_h);
  const float scale_w = static_cast<float>(in_w) / static_cast<float>(out_w);
  bicubic_planes<<<grid_for(planes * out_h * out_w), kThreads, 0, stream()>>>(
      x.data<float>(), planes, in_h, in_w, scale_h, scale_w, out_h, out_w, y.data<float>());  // [B, C, out_h, out_w]
  VARCODE_CUDA_LAUNCHED("bicubic_planes");
}

void CudaBackend::area_resize(const Tensor& x, Tensor& y) const {
  enter();
  check_resample(*this, x, y, "area_resize");
  const int64_t planes = x.dim(0) * x.dim(1), in_h = x.dim(2), in_w = x.dim(3), out_h = y.dim(2), out_w = y.dim(3);
  if (planes == 0) return;
  area_planes<<<grid_for(planes * out_h * out_w), kThreads, 0, stream()>>>(x.data<float>(), planes, in_h, in_w, out_h,
                                                                           out_w, y.data<float>());
  VARCODE_CUDA_LAUNCHED("area_planes");
}

void CudaBackend::axpby(float a, const float* x, float b, const float* y, int64_t n, float* out) const {
  enter();
  if (n <= 0) return;
  axpby_values<<<grid_for(n), kThreads, 0, stream()>>>(a, x, b, y, n, out);
  VARCODE_CUDA_LAUNCHED("axpby_values");
}

void CudaBackend::blend(float* f_hat, const float* gt, const float* keep, int64_t batch, int64_t c, int64_t pp) const {
  enter();
  if (batch <= 0 || c <= 0 || pp <= 0) return;
  blend_values<<<grid_for(batch * c * pp), kThreads, 0, stream()>>>(f_hat, gt, keep, batch, c, pp);
  VARCODE_CUDA_LAUNCHED("blend_values");
}

void CudaBackend::add_mul(const float* x, int64_t n, float add, float mul, float* out) const {
  enter();
  if (n <= 0) return;
  add_mul_values<<<grid_for(n), kThreads, 0, stream()>>>(x, n, add, mul, out);
  VARCODE_CUDA_LAUNCHED("add_mul_values");
}

}  // namespace varcode::kernels::cuda
