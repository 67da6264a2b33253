// The VQ-VAE's operations besides the convolutions (vae_conv.cu): GroupNorm (+ SiLU), nearest 2x
// upsampling, the mid block's single-head attention, and the layout changes at the model's
// boundary. Channels-last tensors are [B, H, W, C], f32 or bf16 where the model passes either
// (vqvae_blocks.cpp); arithmetic is f32, a bf16 output rounds once at the store, as on the CPU.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/op_checks.hpp"
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_context.hpp"
#include "kernels/cuda/gemm.hpp"
#include "kernels/cuda/vae_device.cuh"

namespace varcode::kernels::cuda {

namespace {

using vae::bf16;
using vae::grid_for;
using vae::kThreads;

// Tree reduction over a block of kThreads threads (a power of two); every thread gets the result.
__device__ double block_sum(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int off = kThreads / 2; off > 0; off >>= 1) {
    if (static_cast<int>(threadIdx.x) < off) sh[threadIdx.x] += sh[threadIdx.x + off];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();  // sh is reused by the next reduction
  return r;
}

__device__ float block_sum(float v, float* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int off = kThreads / 2; off > 0; off >>= 1) {
    if (static_cast<int>(threadIdx.x) < off) sh[threadIdx.x] += sh[threadIdx.x + off];
    __syncthreads();
  }
  const float r = sh[0];
  __syncthreads();
  return r;
}

__device__ float block_max(float v, float* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int off = kThreads / 2; off > 0; off >>= 1) {
    if (static_cast<int>(threadIdx.x) < off) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + off]);
    __syncthreads();
  }
  const float r = sh[0];
  __syncthreads();
  return r;
}

// ---- GroupNorm -----------------------------------------------------------------------------------

// Elements of one (image, group) each statistics block sums: a 256 x 256 map of 5-channel groups
// splits into 20 blocks per group, enough to fill the GPU from one image on.
constexpr int64_t kStatsPerBlock = 16384;

struct GroupShape {
  int64_t hw = 0;  // positions per image
  int c = 0, groups = 0, cpg = 0;
  int splits = 0;         // statistics blocks per (image, group)
  int64_t per_split = 0;  // elements each of them sums
};

// Sum and sum of squares (f64, as the CPU backend: single pass without cancellation trouble) of
// one split of one (image, group). Block id = (b * groups + g) * splits + split;
// partial [B * groups, splits, 2].
template <class T>
__global__ void group_stats_kernel(const T* __restrict__ x, GroupShape s, double* __restrict__ partial) {
  __shared__ double sh[kThreads];
  const int64_t id = blockIdx.x;
  const int64_t bg = id / s.splits, split = id - bg * s.splits;
  const int64_t b = bg / s.groups, g = bg - b * s.groups;
  const int64_t n = s.hw * s.cpg;
  const int64_t begin = split * s.per_split;
  const int64_t end = begin + s.per_split < n ? begin + s.per_split : n;
  const T* base = x + b * s.hw * s.c + g * s.cpg;  // the group's first channel at position 0
  double sum = 0.0, sq = 0.0;
  for (int64_t e = begin + threadIdx.x; e < end; e += kThreads) {
    // 32-bit division: a group's element count fits (checked by the caller).
    const uint32_t eu = static_cast<uint32_t>(e), cpg = static_cast<uint32_t>(s.cpg);
    const int64_t p = eu / cpg, ch = eu - (eu / cpg) * cpg;
    const double v = vae::load(base, p * s.c + ch);
    sum += v;
    sq += v * v;
  }
  sum = block_sum(sum, sh);
  sq = block_sum(sq, sh);
  if (threadIdx.x == 0) {
    partial[id * 2] = sum;
    partial[id * 2 + 1] = sq;
  }
}

// Per (image, group): the statistics from the splits in a fixed order, folded with the affine
// parameters into one scale and shift per channel as PyTorch does. coef [B, 2, C] (scale | shift).
__global__ void group_coef_kernel(const double* __restrict__ partial, GroupShape s, int64_t count, float eps,
                                  const float* __restrict__ gamma, const float* __restrict__ beta,
                                  float* __restrict__ coef) {
  for (int64_t bg = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; bg < count; bg += int64_t{gridDim.x} * blockDim.x) {
    double sum = 0.0, sq = 0.0;
    for (int k = 0; k < s.splits; ++k) {
      sum += partial[(bg * s.splits + k) * 2];
      sq += partial[(bg * s.splits + k) * 2 + 1];
    }
    const double n = static_cast<double>(s.hw * s.cpg);
    const double mean = sum / n;
    const double var = fmax(0.0, sq / n - mean * mean);  // biased, as PyTorch
    const float m = static_cast<float>(mean);
    const float rstd = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
    const int64_t b = bg / s.groups, g = bg - b * s.groups;
    float* scale = coef + b * 2 * s.c;
    float* shift = scale + s.c;
    for (int64_t ch = g * s.cpg; ch < (g + 1) * s.cpg; ++ch) {
      scale[ch] = rstd * gamma[ch];
      shift[ch] = beta[ch] - __fmul_rn(scale[ch], m);  // rounded product, not an FMA: the CPU's scalar code
    }
  }
}

// y = x * scale + shift (then SiLU). x and y may be the same buffer (same dtype): each element is
// read, then written, by one thread, so neither pointer is __restrict__.
template <class I, class TI, class TO>
__global__ void group_affine_kernel(const TI* x, I total, I hwc, I c, const float* __restrict__ coef, bool silu,
                                    TO* y) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const I b = i / hwc, ch = i % c;
    const float* scale = coef + static_cast<int64_t>(b) * 2 * c;
    float v = vae::load(x, i) * scale[ch] + scale[c + ch];
    if (silu) v = v / (1.0f + expf(-v));  // SiLU as the CPU computes it
    vae::store(y, i, v);
  }
}

template <class I, class TI, class TO>
void launch_group_affine(const void* x, int64_t total, int64_t hwc, int64_t c, const float* coef, bool silu, void* y) {
  group_affine_kernel<I><<<grid_for(total), kThreads, 0, stream()>>>(static_cast<const TI*>(x), static_cast<I>(total),
                                                                     static_cast<I>(hwc), static_cast<I>(c), coef, silu,
                                                                     static_cast<TO*>(y));
  VARCODE_CUDA_LAUNCHED("group_affine");
}

template <class I>
void group_affine(const void* x, bool xb, int64_t total, int64_t hwc, int64_t c, const float* coef, bool silu, void* y,
                  bool yb) {
  if (!xb && !yb)
    launch_group_affine<I, float, float>(x, total, hwc, c, coef, silu, y);
  else if (!xb)
    launch_group_affine<I, float, bf16>(x, total, hwc, c, coef, silu, y);
  else if (!yb)
    launch_group_affine<I, bf16, float>(x, total, hwc, c, coef, silu, y);
  else
    launch_group_affine<I, bf16, bf16>(x, total, hwc, c, coef, silu, y);
}

// ---- upsampling and layouts ------------------------------------------------------------------------

// y [B, 2H, 2W, C] from x [B, H, W, C]: output (b, oy, ox, c) reads (b, oy / 2, ox / 2, c).
template <class I, class TI, class TO>
__global__ void upsample2x_kernel(const TI* __restrict__ x, I total, I h, I w, I c, TO* __restrict__ y) {
  for (I i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
    const I ch = i % c, pos = i / c;  // pos = (b * 2H + oy) * 2W + ox
    const I ox = pos % (2 * w), row = pos / (2 * w);
    const I oy = row % (2 * h), b = row / (2 * h);
    vae::store(y, i, vae::load(x, ((b * h + oy / 2) * w + ox / 2) * c + ch));
  }
}

template <class I, class TI, class TO>
void launch_upsample2x(const void* x, int64_t total, int64_t h, int64_t w, int64_t c, void* y) {
  upsample2x_kernel<I><<<grid_for(total), kThreads, 0, stream()>>>(static_cast<const TI*>(x), static_cast<I>(total),
                                                                   static_cast<I>(h), static_cast<I>(w),
                                                                   static_cast<I>(c), static_cast<TO*>(y));
  VARCODE_CUDA_LAUNCHED("upsample_nearest2x");
}

template <class I>
void upsample2x(const void* x, bool xb, int64_t total, int64_t h, int64_t w, int64_t c, void* y, bool yb) {
  if (!xb && !yb)
    launch_upsample2x<I, float, float>(x, total, h, w, c, y);
  else if (!xb)
    launch_upsample2x<I, float, bf16>(x, total, h, w, c, y);
  else if (!yb)
    launch_upsample2x<I, bf16, float>(x, total, h, w, c, y);
  else
    launch_upsample2x<I, bf16, bf16>(x, total, h, w, c, y);
}

// y [B, H, W, C] from x [B, C, H, W] (f32), one output element per thread (coalesced writes; these
// maps are the model's inputs, a few channels or a small latent).
template <class TO>
__global__ void nchw_to_nhwc_kernel(const float* __restrict__ x, int64_t total, int64_t c, int64_t hw,
                                    TO* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t ch = i % c, pos = i / c;  // pos = b * HW + p
    const int64_t b = pos / hw, p = pos - b * hw;
    vae::store(y, i, x[(b * c + ch) * hw + p]);
  }
}

// y [B, C, H, W] from x [B, H, W, C] (f32), clamped to [lo, hi] when lo <= hi. The clamp keeps a
// NaN, as std::clamp does on the CPU.
__global__ void nhwc_to_nchw_kernel(const float* __restrict__ x, int64_t total, int64_t c, int64_t hw, bool clamp,
                                    float lo, float hi, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i % hw, bc = i / hw;  // bc = b * C + ch
    const int64_t b = bc / c, ch = bc - b * c;
    float v = x[(b * hw + p) * c + ch];
    if (clamp) v = v < lo ? lo : (hi < v ? hi : v);
    y[i] = v;
  }
}

// ---- attention -------------------------------------------------------------------------------------

// Softmax of each row of s [rows, n] in place, one block per row. The scores arrive scaled (the
// product's alpha is the CPU's float C^-0.5, applied to the finished sums like its r[i] *= ratio).
__global__ void softmax_rows_kernel(float* s, int64_t n) {
  __shared__ float sh[kThreads];
  float* r = s + static_cast<int64_t>(blockIdx.x) * n;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) mx = fmaxf(mx, r[i]);
  mx = block_max(mx, sh);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const float e = expf(r[i] - mx);
    r[i] = e;
    sum += e;
  }
  sum = block_sum(sum, sh);
  const float inv = 1.0f / sum;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) r[i] *= inv;
}

// The score matrices one attention call holds at once (the batch goes through in chunks beyond):
// 16 x 16 maps need 256 KiB per image, 64 x 64 ones 64 MiB.
constexpr int64_t kScoreBytes = int64_t{256} << 20;

}  // namespace

void CudaBackend::group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                                  bool fuse_silu, Tensor& y) const {
  enter();
  backend::check_group_norm_nhwc(x, gamma, beta, groups, y);
  const int64_t B = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3);
  vae::check_on(x, device(), "group_norm_nhwc", "the input");
  vae::check_on(gamma, device(), "group_norm_nhwc", "gamma");
  vae::check_on(beta, device(), "group_norm_nhwc", "beta");
  vae::check_on(y, device(), "group_norm_nhwc", "the output");
  if (x.numel() == 0) return;

  GroupShape s;
  s.hw = HW;
  s.c = static_cast<int>(C);
  s.groups = groups;
  s.cpg = static_cast<int>(C / groups);
  const int64_t n = HW * s.cpg;
  if (n > INT32_MAX)
    throw Error("group_norm_nhwc: a group of " + std::to_string(n) + " values exceeds the kernels' 32-bit index");
  s.splits = static_cast<int>(std::clamp<int64_t>((n + kStatsPerBlock - 1) / kStatsPerBlock, 1, 4096));
  s.per_split = (n + s.splits - 1) / s.splits;
  const int64_t count = B * groups;  // (image, group) pairs
  auto* partial = static_cast<double*>(scratch(0, static_cast<size_t>(count * s.splits * 2) * sizeof(double)));
  auto* coef = static_cast<float*>(scratch(1, static_cast<size_t>(B * 2 * C) * sizeof(float)));  // [B, 2, C]
  const bool xb = x.dtype() == DType::bf16, yb = y.dtype() == DType::bf16;

  const auto blocks = static_cast<unsigned>(count * s.splits);
  if (xb)
    group_stats_kernel<<<blocks, kThreads, 0, stream()>>>(static_cast<const bf16*>(x.raw()), s, partial);
  else
    group_stats_kernel<<<blocks, kThreads, 0, stream()>>>(x.data<float>(), s, partial);
  VARCODE_CUDA_LAUNCHED("group_stats");
  group_coef_kernel<<<grid_for(count), kThreads, 0, stream()>>>(partial, s, count, eps, gamma.data<float>(),
                                                                beta.data<float>(), coef);
  VARCODE_CUDA_LAUNCHED("group_coef");
  const int64_t total = x.numel();
  // 32-bit index arithmetic where it fits (the divisions per element are most of this kernel's work).
  if (total <= INT32_MAX)
    group_affine<uint32_t>(x.raw(), xb, total, HW * C, C, coef, fuse_silu, y.raw(), yb);
  else
    group_affine<int64_t>(x.raw(), xb, total, HW * C, C, coef, fuse_silu, y.raw(), yb);
}

void CudaBackend::upsample_nearest2x_nhwc(const Tensor& x, Tensor& y) const {
  enter();
  if (!vae::is_f32_or_bf16(x) || x.ndim() != 4)
    throw Error("upsample_nearest2x_nhwc: input must be f32 or bf16 [B, H, W, C], got " + shape_str(x.shape()));
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const Shape want{B, 2 * H, 2 * W, C};
  if (!vae::is_f32_or_bf16(y) || y.shape() != want)
    throw Error("upsample_nearest2x_nhwc: output must be " + shape_str(want) + ", got " + shape_str(y.shape()));
  if (x.raw() == y.raw() && x.numel() > 0) throw Error("upsample_nearest2x_nhwc: output must not alias the input");
  vae::check_on(x, device(), "upsample_nearest2x_nhwc", "the input");
  vae::check_on(y, device(), "upsample_nearest2x_nhwc", "the output");
  const int64_t total = y.numel();
  if (total == 0) return;
  const bool xb = x.dtype() == DType::bf16, yb = y.dtype() == DType::bf16;
  if (total <= INT32_MAX)
    upsample2x<uint32_t>(x.raw(), xb, total, H, W, C, y.raw(), yb);
  else
    upsample2x<int64_t>(x.raw(), xb, total, H, W, C, y.raw(), yb);
}

void CudaBackend::vae_attention_nhwc(const Tensor& qkv, Tensor& h) const {
  enter();
  if (qkv.dtype() != DType::f32 || qkv.ndim() != 4 || qkv.dim(3) % 3 != 0)
    throw Error("vae_spatial_attention_nhwc: input must be f32 [B, H, W, 3C], got " + shape_str(qkv.shape()));
  const int64_t B = qkv.dim(0), C = qkv.dim(3) / 3, N = qkv.dim(1) * qkv.dim(2);
  const Shape want{B, qkv.dim(1), qkv.dim(2), C};
  if (h.dtype() != DType::f32 || h.shape() != want)
    throw Error("vae_spatial_attention_nhwc: output must be f32 " + shape_str(want) + ", got " + shape_str(h.shape()));
  vae::check_on(qkv, device(), "vae_attention_nhwc", "qkv");
  vae::check_on(h, device(), "vae_attention_nhwc", "the output");
  if (h.numel() == 0) return;
  const int64_t per_image = N * N * static_cast<int64_t>(sizeof(float));
  const int64_t images = std::clamp<int64_t>(kScoreBytes / per_image, 1, B);                // per chunk
  auto* scores = static_cast<float*>(scratch(0, static_cast<size_t>(images * per_image)));  // [images, N, N]
  const float ratio = static_cast<float>(std::pow(static_cast<double>(C), -0.5));
  for (int64_t b0 = 0; b0 < B; b0 += images) {
    const int64_t bc = std::min(images, B - b0);
    const float* base = qkv.data<float>() + b0 * N * 3 * C;  // [bc, N, 3C]: q | k | v channel blocks
    // scores[b] [N, N] = q[b] [N, C] k[b]^T * C^-0.5; q and k are strided views of qkv's rows.
    GemmArgs qk;
    qk.type = GemmType::f32;
    qk.m = N;
    qk.n = N;
    qk.k = C;
    qk.a = base;
    qk.lda = 3 * C;
    qk.b = base + C;
    qk.b_transposed = true;
    qk.ldb = 3 * C;
    qk.d = scores;
    qk.ldd = N;
    qk.alpha = ratio;
    qk.batch = static_cast<int>(bc);
    qk.stride_a = N * 3 * C;
    qk.stride_b = N * 3 * C;
    qk.stride_d = N * N;
    gemm(qk);
    softmax_rows_kernel<<<static_cast<unsigned>(bc * N), kThreads, 0, stream()>>>(scores, N);
    VARCODE_CUDA_LAUNCHED("vae_softmax_rows");
    // h[b] [N, C] = w[b] [N, N] v[b] [N, C].
    GemmArgs wv;
    wv.type = GemmType::f32;
    wv.m = N;
    wv.n = C;
    wv.k = N;
    wv.a = scores;
    wv.lda = N;
    wv.b = base + 2 * C;
    wv.b_transposed = false;
    wv.ldb = 3 * C;
    wv.d = h.data<float>() + b0 * N * C;
    wv.ldd = C;
    wv.batch = static_cast<int>(bc);
    wv.stride_a = N * N;
    wv.stride_b = N * 3 * C;
    wv.stride_d = N * C;
    gemm(wv);
  }
}

void CudaBackend::nchw_to_nhwc(const Tensor& x, Tensor& y) const {
  enter();
  if (x.dtype() != DType::f32 || x.ndim() != 4)
    throw Error("nchw_to_nhwc: input must be f32 [B, C, H, W], got " + shape_str(x.shape()));
  const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  if (!vae::is_f32_or_bf16(y) || y.shape() != Shape{B, H, W, C})
    throw Error("nchw_to_nhwc: output must be " + shape_str({B, H, W, C}) + ", got " + shape_str(y.shape()));
  vae::check_on(x, device(), "nchw_to_nhwc", "the input");
  vae::check_on(y, device(), "nchw_to_nhwc", "the output");
  const int64_t total = y.numel();
  if (total == 0) return;
  if (y.dtype() == DType::bf16)
    nchw_to_nhwc_kernel<<<grid_for(total), kThreads, 0, stream()>>>(x.data<float>(), total, C, H * W,
                                                                    static_cast<bf16*>(y.raw()));
  else
    nchw_to_nhwc_kernel<<<grid_for(total), kThreads, 0, stream()>>>(x.data<float>(), total, C, H * W, y.data<float>());
  VARCODE_CUDA_LAUNCHED("nchw_to_nhwc");
}

void CudaBackend::nhwc_to_nchw(const Tensor& x, Tensor& y, float lo, float hi) const {
  enter();
  if (x.dtype() != DType::f32 || x.ndim() != 4)
    throw Error("nhwc_to_nchw: input must be f32 [B, H, W, C], got " + shape_str(x.shape()));
  const int64_t B = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  if (y.dtype() != DType::f32 || y.shape() != Shape{B, C, H, W})
    throw Error("nhwc_to_nchw: output must be f32 " + shape_str({B, C, H, W}) + ", got " + shape_str(y.shape()));
  vae::check_on(x, device(), "nhwc_to_nchw", "the input");
  vae::check_on(y, device(), "nhwc_to_nchw", "the output");
  const int64_t total = y.numel();
  if (total == 0) return;
  nhwc_to_nchw_kernel<<<grid_for(total), kThreads, 0, stream()>>>(x.data<float>(), total, C, H * W, lo <= hi, lo, hi,
                                                                  y.data<float>());
  VARCODE_CUDA_LAUNCHED("nhwc_to_nchw");
}

// conv2d_nhwc takes bf16 activations (bf16 products on cuBLASLt, f32 accumulation).
bool CudaBackend::bf16_activations() const { return true; }

}  // namespace varcode::kernels::cuda
