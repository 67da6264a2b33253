// The CPU backend: the hand-written AVX-512 kernels and oneDNN behind the backend interface.
// Device memory is host memory, so to_device / to_host are copies within RAM.
#pragma once
#include "backend/backend.hpp"

namespace varcode::kernels::cpu {

// Not final: the emulated-device test backend (tests/backend/) runs these kernels on memory it
// tags as another device's.
class CpuBackend : public backend::Backend {
 public:
  Device device() const override { return {}; }
  std::string name() const override { return "cpu"; }

  Tensor alloc(DType dtype, Shape shape) const override;
  Tensor zeros(DType dtype, Shape shape) const override;
  Tensor to_device(const Tensor& host) const override;
  Tensor to_host(const Tensor& t) const override;
  void copy_2d(const void* src, int64_t src_pitch, void* dst, int64_t dst_pitch, int64_t row_bytes,
               int64_t rows) const override;

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
};

}  // namespace varcode::kernels::cpu
