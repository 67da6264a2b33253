// The transformer's row-wise operations and its linear layers on the GPU. Activations are f32
// between operations (the seam's convention); a bf16 layer converts its input to bf16 in scratch
// and runs bf16 x bf16 -> f32 on cuBLASLt, bias and GELU fused into the product's epilogue.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_context.hpp"
#include "kernels/cuda/gemm.hpp"

namespace varcode::kernels::cuda {

namespace {

struct CudaLinear final : backend::LinearWeights {
  Tensor weight;  // [N, K] f32 or bf16 on the GPU
  Tensor bias;    // [N] f32 on the GPU, or undefined
};

constexpr double kLnEps = 1e-6;  // the CPU's (and the reference's) LayerNorm eps
constexpr int kRowThreads = 256;
constexpr int kElementThreads = 256;
constexpr int64_t kMaxGrid = 1 << 20;  // grid-stride loops cover the rest

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>(blocks_for(n, kElementThreads), kMaxGrid));
}

void check_host(const Tensor& t, const char* what) {
  if (t.defined() && t.device() != Device{})
    throw Error(std::string("internal: ") + what + " must be a host tensor, got one on " + device_name(t.device()));
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
__device__ double block_sum(double v, double* shared32) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // shared32 may still be read from the previous call
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < warps; ++w) total += shared32[w];
  return total;
}

// One block per token row: two passes in double (as the CPU), then the modulation in f32.
// out may alias x: each thread writes only the elements it alone read.
__global__ void adaln_modulate_kernel(const float* x, int64_t l, int64_t c, const float* __restrict__ scale,
                                      const float* __restrict__ shift, int64_t mod_stride, float* out) {
  __shared__ double partial[32];
  const int64_t row = blockIdx.x;  // r * l + t
  const int64_t r = row / l;
  const float* xr = x + row * c;  // [C]
  float* outr = out + row * c;    // [C]
  const float* sc = scale + r * mod_stride;
  const float* sh = shift + r * mod_stride;
  double s = 0;
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) s += xr[i];
  const double mean = block_sum(s, partial) / static_cast<double>(c);
  double sq = 0;
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
    const double d = xr[i] - mean;
    sq += d * d;
  }
  const double var = block_sum(sq, partial) / static_cast<double>(c);
  const float rstd = static_cast<float>(1.0 / sqrt(var + kLnEps));
  const float fmean = static_cast<float>(mean);
  // Unfused, in the CPU's order (its AVX-512 build may fuse the last step: 1 ulp).
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x)
    outr[i] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(xr[i], fmean), rstd), __fadd_rn(1.0f, sc[i])), sh[i]);
}

__global__ void gated_residual_add_kernel(float* x, const float* y, int64_t n, int64_t l, int64_t c,
                                          const float* __restrict__ gamma, int64_t mod_stride) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = i / c, ch = i % c;
    x[i] = __fadd_rn(x[i], __fmul_rn(gamma[(row / l) * mod_stride + ch], y[i]));  // unfused, as the CPU
  }
}

__global__ void silu_kernel(const float* x, int64_t n, float* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float v = x[i];
    y[i] = v / (1.0f + expf(-v));
  }
}

__global__ void add_rows_kernel(const float* x, int64_t total, int64_t n, const float* __restrict__ v, float* y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    y[i] = x[i] + v[i % n];
}

__global__ void gather_rows_kernel(const float* __restrict__ table, int64_t n, const int32_t* __restrict__ idx,
                                   int64_t total, float* __restrict__ out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = table[static_cast<int64_t>(idx[i / n]) * n + i % n];
}

// Each factor rounded to f32 once and no contraction into an FMA: the CPU's exact arithmetic.
__global__ void cfg_kernel(const float* __restrict__ logits, int64_t batch, int64_t row,
                           const backend::ImageDraw* __restrict__ draws, double ratio, float* __restrict__ out) {
  const int64_t total = batch * row;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const double t = draws[i / row].cfg * ratio;
    const float a = static_cast<float>(1.0 + t), b = static_cast<float>(t);
    out[i] = __fsub_rn(__fmul_rn(a, logits[i]), __fmul_rn(b, logits[total + i]));
  }
}

}  // namespace

// ---- weights ---------------------------------------------------------------------------------------

std::shared_ptr<const backend::LinearWeights> CudaBackend::linear_weights(const Tensor& weight, const Tensor& bias,
                                                                          DType dtype) const {
  enter();
  check_host(weight, "a linear layer's weight");
  check_host(bias, "a linear layer's bias");
  if (dtype == DType::i8)
    throw Error("int8 weights are a CPU feature (VNNI kernels); on a GPU use bf16 (--dtype bf16) or f32");
  if (dtype != DType::f32 && dtype != DType::bf16)
    throw Error("cuda backend: linear weights can be held in f32 or bf16, not " + std::string(dtype_name(dtype)));
  if (weight.ndim() != 2 || (weight.dtype() != DType::f32 && weight.dtype() != DType::bf16))
    throw Error("cuda backend: a linear weight must be [N, K] f32 or bf16, got " + shape_str(weight.shape()) + " " +
                dtype_name(weight.dtype()));
  const int64_t n = weight.dim(0);
  if (bias.defined() && (bias.dtype() != DType::f32 || bias.ndim() != 1 || bias.dim(0) != n))
    throw Error("cuda backend: a linear bias must be [" + std::to_string(n) + "] f32, got " + shape_str(bias.shape()) +
                " " + dtype_name(bias.dtype()));
  auto w = std::make_shared<CudaLinear>();
  w->out_features = n;
  w->in_features = weight.dim(1);
  w->dtype = dtype;
  w->weight = to_device(weight.dtype() == dtype ? weight : weight.to(dtype));  // [N, K]
  if (bias.defined()) w->bias = to_device(bias);                               // [N]
  return w;
}

std::shared_ptr<const backend::LinearWeights> CudaBackend::int8_linear_weights(const Tensor& q, const Tensor& scale,
                                                                               const Tensor& bias, DType dtype) const {
  enter();
  check_host(q, "an int8 layer's weight");
  check_host(scale, "an int8 layer's scales");
  if (dtype == DType::i8)
    throw Error(
        "int8 weights are a CPU feature (VNNI kernels); on a GPU load the int8 file in bf16 (--dtype bf16) "
        "or f32: the weights are dequantised");
  if (q.ndim() != 2 || q.dtype() != DType::i8)
    throw Error("cuda backend: an int8 weight must be [N, K] i8, got " + shape_str(q.shape()) + " " +
                dtype_name(q.dtype()));
  const int64_t out = q.dim(0), in = q.dim(1);
  if (scale.ndim() != 1 || scale.dim(0) != out || scale.dtype() != DType::f32)
    throw Error("cuda backend: an int8 weight's scales must be [" + std::to_string(out) + "] f32, got " +
                shape_str(scale.shape()) + " " + dtype_name(scale.dtype()));
  // The dequantised weight q * scale, exactly as the CPU backend forms it, then held in `dtype`.
  Tensor deq = Tensor::empty(DType::f32, {out, in});  // [out, in]
  const int8_t* qp = q.data<int8_t>();
  const float* sp = scale.data<float>();
  float* dp = deq.data<float>();
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c) dp[r * in + c] = static_cast<float>(qp[r * in + c]) * sp[r];
  return linear_weights(deq, bias, dtype);
}

// ---- transformer -------------------------------------------------------------------------------------

void CudaBackend::linear(const backend::LinearWeights& lw, const float* x, int64_t m, float* y,
                         backend::Epilogue epilogue) const {
  enter();
  const auto* w = dynamic_cast<const CudaLinear*>(&lw);
  if (!w) throw Error("internal: linear weights of another backend given to the cuda backend");
  if (m <= 0) return;
  const int64_t n = w->out_features, k = w->in_features;
  const bool gelu = epilogue == backend::Epilogue::gelu_tanh;
  const bool has_bias = w->bias.defined();
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.b = w->weight.raw();  // [N, K]
  g.b_transposed = true;
  g.d = y;  // [M, N]
  g.bias = has_bias ? w->bias.data<float>() : nullptr;
  g.epilogue = has_bias ? (gelu ? GemmEpilogue::gelu_bias : GemmEpilogue::bias)
                        : (gelu ? GemmEpilogue::gelu : GemmEpilogue::none);
  if (w->dtype == DType::bf16) {
    auto* xb = static_cast<uint16_t*>(scratch(0, static_cast<size_t>(m * k) * sizeof(uint16_t)));  // [M, K] bf16
    to_bf16(x, m * k, xb);
    g.type = GemmType::bf16;
    g.a = xb;
  } else {
    g.type = GemmType::f32;
    g.a = x;  // [M, K]
  }
  gemm(g);
}

void CudaBackend::adaln_modulate(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale,
                                 const float* shift, int64_t mod_stride, float* out) const {
  enter();
  if (rows <= 0 || l <= 0 || c <= 0) return;
  if (rows * l > 0x7fffffff) throw Error("internal: adaln_modulate over more than 2^31 token rows");
  adaln_modulate_kernel<<<static_cast<unsigned>(rows * l), kRowThreads, 0, stream()>>>(x, l, c, scale, shift,
                                                                                       mod_stride, out);
  VARCODE_CUDA_LAUNCHED("adaln_modulate");
}

void CudaBackend::gated_residual_add(float* x, const float* y, int64_t rows, int64_t l, int64_t c, const float* gamma,
                                     int64_t mod_stride) const {
  enter();
  const int64_t n = rows * l * c;
  if (n <= 0) return;
  gated_residual_add_kernel<<<grid_for(n), kElementThreads, 0, stream()>>>(x, y, n, l, c, gamma, mod_stride);
  VARCODE_CUDA_LAUNCHED("gated_residual_add");
}

void CudaBackend::silu(const float* x, int64_t n, float* y) const {
  enter();
  if (n <= 0) return;
  silu_kernel<<<grid_for(n), kElementThreads, 0, stream()>>>(x, n, y);
  VARCODE_CUDA_LAUNCHED("silu");
}

void CudaBackend::add_rows(const float* x, int64_t rows, int64_t n, const float* v, float* y) const {
  enter();
  const int64_t total = rows * n;
  if (total <= 0) return;
  add_rows_kernel<<<grid_for(total), kElementThreads, 0, stream()>>>(x, total, n, v, y);
  VARCODE_CUDA_LAUNCHED("add_rows");
}

void CudaBackend::gather_rows(const float* table, int64_t n, const int32_t* idx, int64_t count, float* out) const {
  enter();
  const int64_t total = count * n;
  if (total <= 0) return;
  gather_rows_kernel<<<grid_for(total), kElementThreads, 0, stream()>>>(table, n, idx, total, out);
  VARCODE_CUDA_LAUNCHED("gather_rows");
}

// ---- guidance ------------------------------------------------------------------------------------------

void CudaBackend::cfg(const float* logits, int64_t batch, int64_t n, int64_t vocab, const backend::ImageDraw* draws,
                      double ratio, float* out) const {
  enter();
  const int64_t row = n * vocab, total = batch * row;
  if (total <= 0) return;
  cfg_kernel<<<grid_for(total), kElementThreads, 0, stream()>>>(logits, batch, row, draws, ratio, out);
  VARCODE_CUDA_LAUNCHED("cfg");
}

}  // namespace varcode::kernels::cuda
