// The CUDA backend: one per GPU, shared by every model on it. Weights live on the GPU in the
// compute dtype (bf16, or f32 for the parity path), activations in f32 between operations (the
// seam's convention); products run on cuBLASLt, everything else on the kernels of this folder.
// Operations launch on the calling thread's stream (cuda_context.hpp), so only to_host() waits.
//
// Its methods are defined by the files of the operations they belong to:
//   cuda_backend.cpp        memory, crossings, constants
//   transformer_ops.cu      linear_weights, int8_linear_weights, linear, adaln_modulate,
//                           gated_residual_add, silu, add_rows, gather_rows, cfg
//   attention.cu            kv_cache, attention
//   sampling.cu             codebook_weights, sample, embed_tokens, nearest_code
//   latent_ops.cu           to_channel_major, to_token_major, bicubic_resize, area_resize, axpby,
//                           blend, add_mul
//   vae_conv.cu             conv_weights, conv2d, conv2d_nhwc
//   vae_ops.cu              group_norm_nhwc, upsample_nearest2x_nhwc, vae_attention_nhwc,
//                           nchw_to_nhwc, nhwc_to_nchw, bf16_activations
#pragma once
#include "backend/backend.hpp"

namespace varcode::kernels::cuda {

class CudaBackend final : public backend::Backend {
 public:
  explicit CudaBackend(int gpu);
  int gpu() const { return gpu_; }
  Device device() const override { return {DeviceType::cuda, gpu_}; }
  std::string name() const override { return "cuda:" + std::to_string(gpu_) + " (" + gpu_name_ + ")"; }

  Tensor alloc(DType dtype, Shape shape) const override;
  Tensor zeros(DType dtype, Shape shape) const override;
  Tensor to_device(const Tensor& host) const override;
  Tensor to_host(const Tensor& t) const override;
  void copy_2d(const void* src, int64_t src_pitch, void* dst, int64_t dst_pitch, int64_t row_bytes,
               int64_t rows) const override;
  void synchronize() const override;
  int64_t decode_batch() const override { return 16; }

  std::shared_ptr<const backend::LinearWeights> linear_weights(const Tensor& weight, const Tensor& bias,
                                                               DType dtype) const override;
  std::shared_ptr<const backend::LinearWeights> int8_linear_weights(const Tensor& q, const Tensor& scale,
                                                                    const Tensor& bias, DType dtype) const override;
  std::shared_ptr<const backend::ConvWeights> conv_weights(const Tensor& weight, const Tensor& bias,
                                                           backend::ConvGeometry geometry) const override;
  std::shared_ptr<const backend::CodebookWeights> codebook_weights(const Tensor& embedding) const override;

  void linear(const backend::LinearWeights& w, const float* x, int64_t m, float* y,
              backend::Epilogue epilogue) const override;
  void adaln_modulate(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale, const float* shift,
                      int64_t mod_stride, float* out) const override;
  void gated_residual_add(float* x, const float* y, int64_t rows, int64_t l, int64_t c, const float* gamma,
                          int64_t mod_stride) const override;
  void silu(const float* x, int64_t n, float* y) const override;
  void add_rows(const float* x, int64_t rows, int64_t n, const float* v, float* y) const override;
  void gather_rows(const float* table, int64_t n, const int32_t* idx, int64_t count, float* out) const override;
  std::unique_ptr<backend::KvCache> kv_cache(int64_t rows, int64_t heads, int64_t capacity,
                                             DType compute) const override;
  void attention(backend::KvCache& cache, int64_t r0, int64_t rows, const float* qkv, int64_t l, int64_t p0,
                 const float* scale_mul, std::span<const int> key_limit, float* out) const override;

  void cfg(const float* logits, int64_t batch, int64_t n, int64_t vocab, const backend::ImageDraw* draws, double ratio,
           float* out) const override;
  void sample(const backend::SampleArgs& args) const override;
  void embed_tokens(const backend::CodebookWeights& codebook, const int64_t* idx, int64_t n, float* h) const override;
  void nearest_code(const backend::CodebookWeights& codebook, const float* z, int64_t n, int64_t* idx) const override;

  void to_channel_major(const Tensor& x_BlC, Tensor& y_BChw) const override;
  void to_token_major(const Tensor& x_BChw, Tensor& y_BlC) const override;
  void bicubic_resize(const Tensor& x, Tensor& y) const override;
  void area_resize(const Tensor& x, Tensor& y) const override;
  void axpby(float a, const float* x, float b, const float* y, int64_t n, float* out) const override;
  void blend(float* f_hat, const float* gt, const float* keep, int64_t batch, int64_t c, int64_t pp) const override;
  void add_mul(const float* x, int64_t n, float add, float mul, float* out) const override;

  void conv2d(const backend::ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const override;
  void conv2d_nhwc(const backend::ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const override;
  void group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps, bool fuse_silu,
                       Tensor& y) const override;
  void upsample_nearest2x_nhwc(const Tensor& x, Tensor& y) const override;
  void vae_attention_nhwc(const Tensor& qkv, Tensor& h) const override;
  void nchw_to_nhwc(const Tensor& x, Tensor& y) const override;
  void nhwc_to_nchw(const Tensor& x, Tensor& y, float lo, float hi) const override;
  bool bf16_activations() const override;

  // Makes this backend's GPU current on the calling thread (every operation starts with it).
  void enter() const;

 private:
  int gpu_ = 0;
  std::string gpu_name_;
};

}  // namespace varcode::kernels::cuda
