// The VQ-VAE's convolutions as implicit GEMMs: the input's patches are gathered into an im2col
// matrix [M, K] (M output positions, K = kernel^2 * Cin products each) in scratch memory, and one
// cuBLASLt product per chunk of rows multiplies it by the weights [Cout, K], bias in the epilogue.
// A 1x1 convolution without stride or padding is the product of the map itself.
//
// Rows of M are the output positions in (image, row, column) order, so a channels-last output is
// the product's D as it stands; an NCHW output (conv2d) or a bf16 one goes through an f32 staging
// matrix and a store kernel that converts, scatters and accumulates. The batch is processed in
// chunks of rows so that the im2col matrix stays within kChunkBytes, however large the batch.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_context.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/vae_device.cuh"

namespace varcode::kernels::cuda {

namespace {

using vae::bf16;
using vae::grid_for;
using vae::kThreads;

// Rows of the im2col matrix and of the weights are padded to a multiple of 8 elements (zero
// columns, which add exact zeros): 16-byte rows for bf16, 32 for f32, whatever Cin (3 for the
// encoder's conv_in) and so the widest cuBLASLt kernels.
constexpr int64_t kKAlign = 8;
// Row pitch of the f32 staging matrix, in elements (16-byte rows for an output of 3 channels).
constexpr int64_t kStageAlign = 4;
// The most an im2col (or staging) chunk takes. 256 MiB is 46k rows of a 3x3 conv over 160 f32
// channels, a product large enough to fill any GPU; more would only hold more scratch per thread.
constexpr int64_t kChunkBytes = int64_t{256} << 20;
// Channels each thread of the vectorised im2col copies (one 16-byte word of bf16, two of f32).
constexpr int kVec = 8;

int64_t round_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

struct CudaConv final : backend::ConvWeights {
  int64_t k_cols = 0;   // kernel * kernel * in_channels: the products of one output
  int64_t k_pitch = 0;  // k_cols rounded up to kKAlign
  Tensor weight;        // [O, k_pitch] f32 on the GPU, columns in (ky, kx, ci) order, zero padded
  Tensor bias;          // [O] f32 on the GPU
  // The weights in bf16 for bf16 activations, made at the first such call (the CPU backend does
  // the same): the encoder and an f32 decode never need them.
  mutable std::once_flag bf16_once;
  mutable Tensor weight_bf16;  // [O, k_pitch] bf16

  const void* weights_bf16(const CudaBackend& be) const {
    std::call_once(bf16_once, [&] {
      Tensor t = be.alloc(DType::bf16, weight.shape());  // [O, k_pitch]
      to_bf16(weight.data<float>(), weight.numel(), t.data<uint16_t>());
      // Other threads use the copy on their own streams as soon as call_once returns.
      VARCODE_CUDA_CHECK(cudaStreamSynchronize(stream()));
      weight_bf16 = t;
    });
    return weight_bf16.raw();
  }
};

// The gather of one chunk of im2col rows. x is indexed (image, row, column, channel) through
// element strides, so that one kernel reads NHWC and NCHW maps.
struct Im2col {
  int64_t sb = 0, sh = 0, sw = 0, sc = 0;  // x's element strides
  int h = 0, w = 0, cin = 0, kernel = 0, stride = 1, pad_top = 0, pad_left = 0;
  int w_out = 0, hw_out = 0;  // output columns; output positions per image
  int k_cols = 0, k_pitch = 0;
};

// col [rows, k_pitch] = the patches of output positions m0 .. m0 + rows; padding (and the columns
// past k_cols) reads as zero. Indices fit 32 bits: a chunk holds at most kChunkBytes and M < 2^31
// (checked by the caller); addresses into x are 64-bit.
template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, Im2col a, uint32_t m0, uint32_t rows, T* __restrict__ col) {
  const uint32_t n = rows * static_cast<uint32_t>(a.k_pitch);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const uint32_t r = i / a.k_pitch, kk = i - r * a.k_pitch;
    T v{};
    if (kk < static_cast<uint32_t>(a.k_cols)) {
      const uint32_t m = m0 + r;
      const uint32_t b = m / a.hw_out, p = m - b * a.hw_out;
      const int oy = static_cast<int>(p / a.w_out), ox = static_cast<int>(p - (p / a.w_out) * a.w_out);
      const uint32_t tap = kk / a.cin, ci = kk - tap * a.cin;
      const int ky = static_cast<int>(tap / a.kernel), kx = static_cast<int>(tap - (tap / a.kernel) * a.kernel);
      const int iy = oy * a.stride - a.pad_top + ky, ix = ox * a.stride - a.pad_left + kx;
      if (iy >= 0 && iy < a.h && ix >= 0 && ix < a.w) v = x[b * a.sb + iy * a.sh + ix * a.sw + ci * a.sc];
    }
    col[i] = v;
  }
}

// The same for channels-last x with Cin % kVec == 0 (then k_pitch == k_cols): each thread copies
// kVec consecutive channels of one tap as 16-byte words. x and col are 16-byte aligned (checked).
template <class T>
__global__ void im2col_vec_kernel(const T* __restrict__ x, Im2col a, uint32_t m0, uint32_t rows, T* __restrict__ col) {
  constexpr int kWords = kVec * static_cast<int>(sizeof(T)) / static_cast<int>(sizeof(uint4));
  const uint32_t per_row = static_cast<uint32_t>(a.k_pitch) / kVec;
  const uint32_t n = rows * per_row;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const uint32_t r = i / per_row, kk = (i - r * per_row) * kVec;
    const uint32_t m = m0 + r;
    const uint32_t b = m / a.hw_out, p = m - b * a.hw_out;
    const int oy = static_cast<int>(p / a.w_out), ox = static_cast<int>(p - (p / a.w_out) * a.w_out);
    const uint32_t tap = kk / a.cin, ci = kk - tap * a.cin;
    const int ky = static_cast<int>(tap / a.kernel), kx = static_cast<int>(tap - (tap / a.kernel) * a.kernel);
    const int iy = oy * a.stride - a.pad_top + ky, ix = ox * a.stride - a.pad_left + kx;
    uint4 v[kWords];
    for (int k = 0; k < kWords; ++k) v[k] = make_uint4(0u, 0u, 0u, 0u);
    if (iy >= 0 && iy < a.h && ix >= 0 && ix < a.w) {
      const auto* src = reinterpret_cast<const uint4*>(x + (b * a.sb + iy * a.sh + ix * a.sw + ci));
      for (int k = 0; k < kWords; ++k) v[k] = src[k];
    }
    auto* dst = reinterpret_cast<uint4*>(col + (static_cast<int64_t>(r) * a.k_pitch + kk));
    for (int k = 0; k < kWords; ++k) dst[k] = v[k];
  }
}

// Where the product's rows go when they do not land in y directly.
struct OutRows {
  int64_t sb = 0, sp = 0, sc = 0;  // y's element strides per image, position, channel
  int hw_out = 0, cout = 0;
  int pitch = 0;  // the staging matrix's row pitch
};

// y[position m0 + r, channel co] = stage[r, co] (+ y when accumulating), converted to y's dtype.
template <class TO>
__global__ void store_rows_kernel(const float* __restrict__ stage, OutRows o, uint32_t m0, uint32_t rows,
                                  bool accumulate, TO* __restrict__ y) {
  const uint32_t n = rows * static_cast<uint32_t>(o.cout);
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const uint32_t r = i / o.cout, co = i - r * o.cout;
    const uint32_t m = m0 + r;
    const uint32_t b = m / o.hw_out, p = m - b * o.hw_out;
    const int64_t at = b * o.sb + p * o.sp + co * o.sc;
    float v = stage[static_cast<int64_t>(r) * o.pitch + co];
    if (accumulate) v = vae::load(y, at) + v;  // (conv + bias) + y, the CPU's order
    vae::store(y, at, v);
  }
}

// One convolution call: x indexed (image, row, column, channel) through strides, y either
// channels-last (y_nhwc) or NCHW.
struct ConvCall {
  const void* x = nullptr;
  bool x_bf16 = false;
  int64_t B = 0, H = 0, W = 0;
  int64_t xsb = 0, xsh = 0, xsw = 0, xsc = 0;
  bool x_nhwc = false;
  void* y = nullptr;
  bool y_bf16 = false;
  bool y_nhwc = false;
  int64_t Ho = 0, Wo = 0;
  bool accumulate = false;
};

void run_conv(const CudaBackend& be, const CudaConv& w, const ConvCall& c) {
  const int64_t M = c.B * c.Ho * c.Wo;
  if (M <= 0) return;
  if (M > INT32_MAX || c.H * c.W > INT32_MAX)
    throw Error("conv2d: " + std::to_string(M) + " output positions exceed the CUDA kernels' 32-bit index");
  const int64_t cin = w.in_channels, cout = w.out_channels;
  const int64_t esx = c.x_bf16 ? 2 : 4;
  const backend::ConvGeometry& g = w.geometry;
  // A 1x1 conv without stride or padding multiplies the map itself (rows of Cin channels).
  const bool plain = w.kernel == 1 && g.stride == 1 && g.pad_top == 0 && g.pad_left == 0 && g.pad_bottom == 0 &&
                     g.pad_right == 0 && c.x_nhwc && cin % kKAlign == 0 && aligned16(c.x);
  // An f32 channels-last y takes the product directly (bias and accumulation in the epilogue).
  const bool direct = !c.y_bf16 && c.y_nhwc && cout % kStageAlign == 0;
  const int64_t stage_pitch = round_up(cout, kStageAlign);
  const int64_t row_bytes = std::max<int64_t>(plain ? 0 : w.k_pitch * esx, direct ? 0 : stage_pitch * 4);
  int64_t rows = row_bytes ? std::max<int64_t>(1, kChunkBytes / row_bytes) : M;
  if (rows > 64) rows = rows / 64 * 64;  // chunks start on aligned rows
  rows = std::min(rows, M);

  void* col = plain ? nullptr : scratch(0, static_cast<size_t>(rows * w.k_pitch * esx));  // [rows, k_pitch]
  float* stage =
      direct ? nullptr : static_cast<float*>(scratch(1, static_cast<size_t>(rows * stage_pitch * 4)));  // [rows, pitch]
  const void* weights = c.x_bf16 ? w.weights_bf16(be) : w.weight.raw();

  Im2col a;
  a.sb = c.xsb;
  a.sh = c.xsh;
  a.sw = c.xsw;
  a.sc = c.xsc;
  a.h = static_cast<int>(c.H);
  a.w = static_cast<int>(c.W);
  a.cin = static_cast<int>(cin);
  a.kernel = w.kernel;
  a.stride = g.stride;
  a.pad_top = g.pad_top;
  a.pad_left = g.pad_left;
  a.w_out = static_cast<int>(c.Wo);
  a.hw_out = static_cast<int>(c.Ho * c.Wo);
  a.k_cols = static_cast<int>(w.k_cols);
  a.k_pitch = static_cast<int>(w.k_pitch);
  const bool vec = c.x_nhwc && c.xsc == 1 && cin % kVec == 0 && aligned16(c.x);

  OutRows o;
  if (c.y_nhwc) {
    o.sb = c.Ho * c.Wo * cout;
    o.sp = cout;
    o.sc = 1;
  } else {
    o.sb = cout * c.Ho * c.Wo;
    o.sp = 1;
    o.sc = c.Ho * c.Wo;
  }
  o.hw_out = static_cast<int>(c.Ho * c.Wo);
  o.cout = static_cast<int>(cout);
  o.pitch = static_cast<int>(stage_pitch);

  for (int64_t m0 = 0; m0 < M; m0 += rows) {
    const int64_t mc = std::min(rows, M - m0);
    const auto m0u = static_cast<uint32_t>(m0), mcu = static_cast<uint32_t>(mc);
    const void* a_ptr = nullptr;
    if (plain) {
      a_ptr = static_cast<const char*>(c.x) + m0 * cin * esx;  // rows m0.. of x [M, Cin]
    } else {
      const int64_t n = vec ? mc * w.k_pitch / kVec : mc * w.k_pitch;
      if (c.x_bf16) {
        const auto* xs = static_cast<const uint16_t*>(c.x);
        auto* cs = static_cast<uint16_t*>(col);
        if (vec)
          im2col_vec_kernel<<<grid_for(n), kThreads, 0, stream()>>>(xs, a, m0u, mcu, cs);
        else
          im2col_kernel<<<grid_for(n), kThreads, 0, stream()>>>(xs, a, m0u, mcu, cs);
      } else {
        const auto* xs = static_cast<const float*>(c.x);
        auto* cs = static_cast<float*>(col);
        if (vec)
          im2col_vec_kernel<<<grid_for(n), kThreads, 0, stream()>>>(xs, a, m0u, mcu, cs);
        else
          im2col_kernel<<<grid_for(n), kThreads, 0, stream()>>>(xs, a, m0u, mcu, cs);
      }
      VARCODE_CUDA_LAUNCHED("im2col");
      a_ptr = col;
    }

    GemmArgs ga;
    ga.type = c.x_bf16 ? GemmType::bf16 : GemmType::f32;
    ga.m = mc;
    ga.n = cout;
    ga.k = w.k_pitch;
    ga.a = a_ptr;
    ga.lda = w.k_pitch;  // == cin on the plain path
    ga.b = weights;
    ga.b_transposed = true;
    ga.ldb = w.k_pitch;
    ga.bias = w.bias.data<float>();
    ga.epilogue = GemmEpilogue::bias;
    if (direct) {
      ga.d = static_cast<float*>(c.y) + m0 * cout;  // rows m0.. of y [M, Cout]
      ga.ldd = cout;
      ga.accumulate = c.accumulate;
    } else {
      ga.d = stage;
      ga.ldd = stage_pitch;
      ga.accumulate = false;
    }
    gemm(ga);

    if (!direct) {
      const int64_t n = mc * cout;
      if (c.y_bf16)
        store_rows_kernel<<<grid_for(n), kThreads, 0, stream()>>>(stage, o, m0u, mcu, c.accumulate,
                                                                  static_cast<bf16*>(c.y));
      else
        store_rows_kernel<<<grid_for(n), kThreads, 0, stream()>>>(stage, o, m0u, mcu, c.accumulate,
                                                                  static_cast<float*>(c.y));
      VARCODE_CUDA_LAUNCHED("conv_store_rows");
    }
  }
}

}  // namespace

std::shared_ptr<const backend::ConvWeights> CudaBackend::conv_weights(const Tensor& weight, const Tensor& bias,
                                                                      backend::ConvGeometry geometry) const {
  enter();
  if (weight.ndim() != 4 || weight.dim(2) != weight.dim(3) ||
      (weight.dtype() != DType::f32 && weight.dtype() != DType::bf16))
    throw Error("conv2d: weight must be f32 [O, I, k, k], got " + shape_str(weight.shape()));
  if (bias.ndim() != 1 || bias.dim(0) != weight.dim(0) || (bias.dtype() != DType::f32 && bias.dtype() != DType::bf16))
    throw Error("conv2d: bias must be f32 [" + std::to_string(weight.dim(0)) + "], got " + shape_str(bias.shape()));
  if (geometry.stride < 1 || geometry.pad_top < 0 || geometry.pad_left < 0 || geometry.pad_bottom < 0 ||
      geometry.pad_right < 0)
    throw Error("conv2d: stride must be positive and padding non-negative");
  auto w = std::make_shared<CudaConv>();
  w->out_channels = static_cast<int>(weight.dim(0));
  w->in_channels = static_cast<int>(weight.dim(1));
  w->kernel = static_cast<int>(weight.dim(2));
  w->geometry = geometry;
  const int64_t O = w->out_channels, I = w->in_channels, k = w->kernel;
  w->k_cols = k * k * I;
  w->k_pitch = round_up(w->k_cols, kKAlign);

  // [O, I, k, k] -> [O, (ky, kx, ci)]: the order of an im2col row of channels-last patches.
  const Tensor w32 = weight.dtype() == DType::f32 ? weight : weight.to(DType::f32);  // [O, I, k, k]
  Tensor packed = Tensor::zeros(DType::f32, {O, w->k_pitch});                        // [O, k_pitch]
  const float* src = w32.data<float>();
  float* dst = packed.data<float>();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i)
      for (int64_t ky = 0; ky < k; ++ky)
        for (int64_t kx = 0; kx < k; ++kx)
          dst[o * w->k_pitch + (ky * k + kx) * I + i] = src[((o * I + i) * k + ky) * k + kx];
  w->weight = to_device(packed);
  w->bias = to_device(bias.dtype() == DType::f32 ? bias : bias.to(DType::f32));  // [O]
  return w;
}

void CudaBackend::conv2d(const backend::ConvWeights& cw, const Tensor& x, Tensor& y, bool accumulate) const {
  enter();
  const auto& w = static_cast<const CudaConv&>(cw);
  const backend::ConvGeometry& g = w.geometry;
  if (x.dtype() != DType::f32 || x.ndim() != 4 || x.dim(1) != w.in_channels)
    throw Error("conv2d: input must be f32 [B, " + std::to_string(w.in_channels) + ", H, W], got " +
                shape_str(x.shape()));
  if (x.dim(2) + g.pad_top + g.pad_bottom < w.kernel || x.dim(3) + g.pad_left + g.pad_right < w.kernel)
    throw Error("conv2d: input " + shape_str(x.shape()) + " is smaller than the kernel");
  const int64_t Ho = w.out_h(static_cast<int>(x.dim(2))), Wo = w.out_w(static_cast<int>(x.dim(3)));
  const Shape want{x.dim(0), w.out_channels, Ho, Wo};
  if (y.dtype() != DType::f32 || y.shape() != want)
    throw Error("conv2d: output must be f32 " + shape_str(want) + ", got " + shape_str(y.shape()));
  if (x.numel() > 0 && x.raw() == y.raw()) throw Error("conv2d: output must not alias the input");
  vae::check_on(x, device(), "conv2d", "the input");
  vae::check_on(y, device(), "conv2d", "the output");
  if (y.numel() == 0) return;
  ConvCall c;
  c.x = x.raw();
  c.B = x.dim(0);
  c.H = x.dim(2);
  c.W = x.dim(3);
  c.xsb = x.dim(1) * c.H * c.W;
  c.xsh = c.W;
  c.xsw = 1;
  c.xsc = c.H * c.W;
  c.y = y.raw();
  c.Ho = Ho;
  c.Wo = Wo;
  c.accumulate = accumulate;
  run_conv(*this, w, c);
}

void CudaBackend::conv2d_nhwc(const backend::ConvWeights& cw, const Tensor& x, Tensor& y, bool accumulate) const {
  enter();
  const auto& w = static_cast<const CudaConv&>(cw);
  const backend::ConvGeometry& g = w.geometry;
  if (!vae::is_f32_or_bf16(x) || x.ndim() != 4 || x.dim(3) != w.in_channels)
    throw Error("conv2d: channels-last input must be f32 or bf16 [B, H, W, " + std::to_string(w.in_channels) +
                "], got " + shape_str(x.shape()));
  if (x.dim(1) + g.pad_top + g.pad_bottom < w.kernel || x.dim(2) + g.pad_left + g.pad_right < w.kernel)
    throw Error("conv2d: input " + shape_str(x.shape()) + " is smaller than the kernel");
  const int64_t Ho = w.out_h(static_cast<int>(x.dim(1))), Wo = w.out_w(static_cast<int>(x.dim(2)));
  const Shape want{x.dim(0), Ho, Wo, w.out_channels};
  if (!vae::is_f32_or_bf16(y) || y.shape() != want)
    throw Error("conv2d: channels-last output must be f32 or bf16 " + shape_str(want) + ", got " +
                shape_str(y.shape()));
  // As the CPU backend: the product runs in x's dtype, and an f32 product does not write bf16.
  if (x.dtype() == DType::f32 && y.dtype() == DType::bf16)
    throw Error("conv2d: a bf16 channels-last output needs a bf16 input");
  if (x.numel() > 0 && x.raw() == y.raw()) throw Error("conv2d: output must not alias the input");
  vae::check_on(x, device(), "conv2d", "the input");
  vae::check_on(y, device(), "conv2d", "the output");
  if (y.numel() == 0) return;
  ConvCall c;
  c.x = x.raw();
  c.x_bf16 = x.dtype() == DType::bf16;
  c.B = x.dim(0);
  c.H = x.dim(1);
  c.W = x.dim(2);
  c.xsb = c.H * c.W * x.dim(3);
  c.xsh = c.W * x.dim(3);
  c.xsw = x.dim(3);
  c.xsc = 1;
  c.x_nhwc = true;
  c.y = y.raw();
  c.y_bf16 = y.dtype() == DType::bf16;
  c.y_nhwc = true;
  c.Ho = Ho;
  c.Wo = Wo;
  c.accumulate = accumulate;
  run_conv(*this, w, c);
}

}  // namespace varcode::kernels::cuda
