// The seam between the models and the devices. The model code (src/model/) is written once against
// this interface; each device implements it (src/kernels/cpu/cpu_backend.cpp, and later
// src/kernels/cuda/). A backend owns its device's memory and the weights it packed, and runs
// every operation the models need on tensors of its device. Nothing crosses between host and
// device unless the model asks for it with to_device() / to_host().
//
// Conventions: a `const float*` / `float*` argument is a pointer into a tensor of this backend's
// device (never host memory the model filled itself); sizes, strides, scalars and small schedule
// metadata (`key_limit`) are host values. Operations may run asynchronously on the device; to_host()
// returns once the data is there.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "varcode/tensor.hpp"

namespace varcode::backend {

enum class Epilogue { none, gelu_tanh };

// A linear layer's weights in the backend's own packed layout (y = x W^T + b).
class LinearWeights {
 public:
  virtual ~LinearWeights() = default;
  int64_t out_features = 0, in_features = 0;
  DType dtype = DType::f32;  // the dtype the weights are held in (what the layer computes in)
};

struct ConvGeometry {
  int stride = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  static ConvGeometry same(int kernel) {  // stride 1, output size = input size (odd kernel)
    const int p = kernel / 2;
    return {1, p, p, p, p};
  }
};

// A convolution's weights in the backend's own layout.
class ConvWeights {
 public:
  virtual ~ConvWeights() = default;
  int out_channels = 0, in_channels = 0, kernel = 0;
  ConvGeometry geometry;
  int out_h(int h) const { return (h + geometry.pad_top + geometry.pad_bottom - kernel) / geometry.stride + 1; }
  int out_w(int w) const { return (w + geometry.pad_left + geometry.pad_right - kernel) / geometry.stride + 1; }
};

// The VQ codebook [V, Cvae], with whatever the backend keeps for the nearest-code search.
class CodebookWeights {
 public:
  virtual ~CodebookWeights() = default;
  int64_t vocab = 0, cvae = 0;
  Tensor embedding;  // [V, Cvae] f32 on the device
};

// The attention keys and values of one block for `rows` rows, laid out as the backend likes.
class KvCache {
 public:
  virtual ~KvCache() = default;
  int64_t rows = 0, heads = 0, capacity = 0;  // capacity: positions it can hold
};

// One image's sampling settings (spec §5.1), as the backends read them from device memory: a
// generation moves one array of them to the device, so that images of different requests with
// different settings can share a batch.
struct ImageDraw {
  static constexpr int kMaxScales = 32;
  uint64_t seed = 0;
  uint32_t image_index = 0;  // with the seed, keys the image's draws: (seed, index, scale, position)
  int32_t top_k = 0;         // 0 disables
  double top_p = 0;          // 0 disables
  double cfg = 0;            // guidance strength at the last scale (scale si uses cfg * si / (SN - 1))
  double temperature[kMaxScales] = {};
  int32_t smooth = 0;  // the Gumbel-softmax latent (--smooth)
};

// One scale's draw: filter, temperature, inverse-CDF with the counter-based uniform of
// (seed, image_index, scale, position); optionally the Gumbel-softmax latent.
struct SampleArgs {
  float* logits = nullptr;              // [B, l, V] CFG-combined, filtered in place
  int64_t batch = 0, l = 0, vocab = 0;  // B, l, V
  const ImageDraw* draws = nullptr;     // [B] device
  int scale = 0;
  double smooth_ratio = 0;  // si / (SN - 1), for --smooth
  const CodebookWeights* codebook = nullptr;
  int64_t* tokens = nullptr;  // row b, column token_begin + t gets the token
  int64_t token_stride = 0, token_begin = 0;
  float* h = nullptr;  // [B, l, Cvae] the tokens' latent embeddings
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // ---- memory -------------------------------------------------------------------------------
  virtual Tensor alloc(DType dtype, Shape shape) const = 0;  // uninitialised
  virtual Tensor zeros(DType dtype, Shape shape) const = 0;
  // Host <-> device: the only two ways data crosses the seam.
  virtual Tensor to_device(const Tensor& host) const = 0;
  virtual Tensor to_host(const Tensor& t) const = 0;
  // Device -> device, `rows` rows of `row_bytes` with their own pitches (bytes).
  virtual void copy_2d(const void* src, int64_t src_pitch, void* dst, int64_t dst_pitch, int64_t row_bytes,
                       int64_t rows) const = 0;
  // Waits for every operation this thread launched (an asynchronous device's clock reading needs
  // it: the per-scale and per-stage seconds).
  virtual void synchronize() const {}
  // Images the VQ-VAE decoder should take per pass: a CPU is compute-bound from one image on (a
  // batch's feature maps only add cache misses), a GPU needs many to fill its cores.
  virtual int64_t decode_batch() const { return 1; }

  // ---- weights: taken from host tensors (possibly mapped from a file), owned by the backend ------
  // weight [N, K] (f32 or bf16 on the host), bias [N] f32 or undefined; held in `dtype` (f32, bf16,
  // or i8: quantised per output channel, where the backend has int8 kernels).
  virtual std::shared_ptr<const LinearWeights> linear_weights(const Tensor& weight, const Tensor& bias,
                                                              DType dtype) const = 0;
  // An int8 file's weight q [N, K] i8 with per-output-channel scales [N] f32 (w ~= q * scale), held
  // in `dtype`: i8 as it is, f32 / bf16 dequantised.
  virtual std::shared_ptr<const LinearWeights> int8_linear_weights(const Tensor& q, const Tensor& scale,
                                                                   const Tensor& bias, DType dtype) const = 0;
  virtual std::shared_ptr<const ConvWeights> conv_weights(const Tensor& weight, const Tensor& bias,
                                                          ConvGeometry geometry) const = 0;
  virtual std::shared_ptr<const CodebookWeights> codebook_weights(const Tensor& embedding) const = 0;
  // A small constant (embeddings, norms' affine parameters): a device copy.
  virtual Tensor constant(const Tensor& host) const { return to_device(host); }

  // ---- transformer ---------------------------------------------------------------------------
  // x [M, K] -> y [M, N] (y may not alias x).
  virtual void linear(const LinearWeights& w, const float* x, int64_t m, float* y,
                      Epilogue epilogue = Epilogue::none) const = 0;
  // out[r, t] = LN(x[r, t]) * (1 + scale[r]) + shift[r]; scale/shift rows `mod_stride` apart.
  // x [R, l, C] -> out [R, l, C] (may alias x).
  virtual void adaln_modulate(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale,
                              const float* shift, int64_t mod_stride, float* out) const = 0;
  // x[r, t] += gamma[r] * y[r, t].  x, y [R, l, C]
  virtual void gated_residual_add(float* x, const float* y, int64_t rows, int64_t l, int64_t c, const float* gamma,
                                  int64_t mod_stride) const = 0;
  virtual void silu(const float* x, int64_t n, float* y) const = 0;  // y may alias x
  // y[r, i] = x[r, i] + v[i].  x, y [rows, n], v [n] (y may alias x).
  virtual void add_rows(const float* x, int64_t rows, int64_t n, const float* v, float* y) const = 0;
  // out[i] = table[idx[i]].  table [T, n], idx [count] int32 (device), out [count, n].
  virtual void gather_rows(const float* table, int64_t n, const int32_t* idx, int64_t count, float* out) const = 0;
  // A zeroed cache for `rows` rows and `capacity` positions, for a model whose matmuls run in
  // `compute` (the backend picks the cache's precision from it).
  virtual std::unique_ptr<KvCache> kv_cache(int64_t rows, int64_t heads, int64_t capacity, DType compute) const = 0;
  // l2-normalised attention (spec §3.4) of rows [r0, r0 + rows) of `cache`: qkv [rows, l, 3C]
  // (q | k | v) at positions [p0, p0 + l); appends k and v, then token t attends to positions
  // [0, key_limit[t]) (host, [l]). scale_mul [H]. out [rows, l, C].
  virtual void attention(KvCache& cache, int64_t r0, int64_t rows, const float* qkv, int64_t l, int64_t p0,
                         const float* scale_mul, std::span<const int> key_limit, float* out) const = 0;

  // ---- head, guidance, sampling --------------------------------------------------------------
  // out [B, n, V] = (1 + t_b) logits[:B] - t_b logits[B:] with t_b = draws[b].cfg * ratio,
  // logits [2B, n, V], draws [B] (device).
  virtual void cfg(const float* logits, int64_t batch, int64_t n, int64_t vocab, const ImageDraw* draws, double ratio,
                   float* out) const = 0;
  virtual void sample(const SampleArgs& args) const = 0;
  // h[i] = codebook[idx[i]].  idx [n] int64 (device, each in [0, V): the caller checked), h [n, Cvae].
  virtual void embed_tokens(const CodebookWeights& codebook, const int64_t* idx, int64_t n, float* h) const = 0;
  // idx[i] = argmin_v ||z[i] - e_v||^2 (ties to the lowest index).  z [n, Cvae], idx [n] int64.
  virtual void nearest_code(const CodebookWeights& codebook, const float* z, int64_t n, int64_t* idx) const = 0;

  // ---- latent maps (NCHW f32 tensors of this device) -------------------------------------------
  // [B, l, C] token-major <-> [B, C, h, w] channel-major.
  virtual void to_channel_major(const Tensor& x_BlC, Tensor& y_BChw) const = 0;
  virtual void to_token_major(const Tensor& x_BChw, Tensor& y_BlC) const = 0;
  // PyTorch's bicubic (A = -0.75, align_corners False) and area interpolation.  x [B, C, h, w] -> y.
  virtual void bicubic_resize(const Tensor& x, Tensor& y) const = 0;
  virtual void area_resize(const Tensor& x, Tensor& y) const = 0;
  // out = a x + b y (elementwise, n values; out may alias x or y).
  virtual void axpby(float a, const float* x, float b, const float* y, int64_t n, float* out) const = 0;
  // f_hat[b, c, p] = f_hat[b, c, p] (1 - keep[p]) + gt[c, p] keep[p].  f_hat [B, C, PP], gt [C, PP].
  virtual void blend(float* f_hat, const float* gt, const float* keep, int64_t batch, int64_t c, int64_t pp) const = 0;
  // out = (x + add) * mul, n values (out may alias x): pictures between [-1, 1] and [0, 1].
  virtual void add_mul(const float* x, int64_t n, float add, float mul, float* out) const = 0;

  // ---- convolutional VQ-VAE -------------------------------------------------------------------
  // NCHW f32: y = conv(x) (+ y when accumulate).
  virtual void conv2d(const ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const = 0;
  // Channels-last [B, H, W, C] (f32 or bf16 activations, f32 accumulation targets).
  virtual void conv2d_nhwc(const ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const = 0;
  virtual void group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                               bool fuse_silu, Tensor& y) const = 0;
  virtual void upsample_nearest2x_nhwc(const Tensor& x, Tensor& y) const = 0;
  // Single-head attention over the H*W positions: qkv [B, H, W, 3C] -> h [B, H, W, C].
  virtual void vae_attention_nhwc(const Tensor& qkv, Tensor& h) const = 0;
  virtual void nchw_to_nhwc(const Tensor& x, Tensor& y) const = 0;
  // With lo <= hi the values are clamped to [lo, hi] on the way.
  virtual void nhwc_to_nchw(const Tensor& x, Tensor& y, float lo = 1.0f, float hi = -1.0f) const = 0;
  // Whether conv2d_nhwc takes bf16 activations on this device (the VQ-VAE's bf16 mode).
  virtual bool bf16_activations() const { return true; }
};

// The CPU backend (src/kernels/cpu/cpu_backend.cpp): one per process, shared by every model.
std::shared_ptr<const Backend> cpu_backend();

}  // namespace varcode::backend
