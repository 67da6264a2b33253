#include "backend/emulated_device.hpp"

#include <cstring>

namespace varcode::test {

namespace {
// Unregisters its storage from the device when the last tensor of it goes.
struct Allocation {
  Allocation(Tensor s, std::mutex* m, std::map<uintptr_t, size_t>* l) : storage(std::move(s)), mutex(m), live(l) {}
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
  Tensor storage;
  std::mutex* mutex;
  std::map<uintptr_t, size_t>* live;
  ~Allocation() {
    std::lock_guard<std::mutex> lock(*mutex);
    live->erase(reinterpret_cast<uintptr_t>(storage.raw()));
  }
};
}  // namespace

Tensor EmulatedDevice::adopt(const Tensor& storage) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    live_[reinterpret_cast<uintptr_t>(storage.raw())] = std::max<size_t>(storage.nbytes(), 1);
  }
  auto holder = std::make_shared<Allocation>(storage, &mutex_, &live_);
  return Tensor::borrow(storage.dtype(), storage.shape(), storage.raw(), holder).on(device());
}

void EmulatedDevice::check(const void* p, const char* what) const {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.upper_bound(a);
  if (it != live_.begin()) {
    --it;
    if (a >= it->first && a < it->first + it->second) return;
  }
  throw Error(std::string("emulated device: '") + what + "' is not device memory");
}

void EmulatedDevice::check(const Tensor& t, const char* what) const {
  if (t.device() != device())
    throw Error(std::string("emulated device: tensor '") + what + "' is on " + device_name(t.device()));
  check(t.raw(), what);
}

void EmulatedDevice::count_upload(int64_t bytes) const {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_.uploads;
  counts_.upload_bytes += bytes;
}

Tensor EmulatedDevice::to_device(const Tensor& host) const {
  if (host.device() != Device{})
    throw Error("emulated device: to_device of a tensor already on " + device_name(host.device()));
  count_upload(static_cast<int64_t>(host.nbytes()));
  return adopt(host.clone());
}

Tensor EmulatedDevice::to_host(const Tensor& t) const {
  check(t, "to_host");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counts_.downloads;
    counts_.download_bytes += static_cast<int64_t>(t.nbytes());
  }
  return t.on(Device{}).clone();
}

void EmulatedDevice::copy_2d(const void* src, int64_t src_pitch, void* dst, int64_t dst_pitch, int64_t row_bytes,
                             int64_t rows) const {
  check(src, "copy_2d src");
  check(dst, "copy_2d dst");
  CpuBackend::copy_2d(src, src_pitch, dst, dst_pitch, row_bytes, rows);
}

std::shared_ptr<const backend::LinearWeights> EmulatedDevice::linear_weights(const Tensor& weight, const Tensor& bias,
                                                                             DType dtype) const {
  count_upload(static_cast<int64_t>(weight.nbytes() + (bias.defined() ? bias.nbytes() : 0)));
  return CpuBackend::linear_weights(weight, bias, dtype);
}

std::shared_ptr<const backend::ConvWeights> EmulatedDevice::conv_weights(const Tensor& weight, const Tensor& bias,
                                                                         backend::ConvGeometry geometry) const {
  count_upload(static_cast<int64_t>(weight.nbytes() + bias.nbytes()));
  return CpuBackend::conv_weights(weight, bias, geometry);
}

void EmulatedDevice::linear(const backend::LinearWeights& w, const float* x, int64_t m, float* y,
                            backend::Epilogue epilogue) const {
  check(x, "linear x");
  check(y, "linear y");
  CpuBackend::linear(w, x, m, y, epilogue);
}

void EmulatedDevice::adaln_modulate(const float* x, int64_t rows, int64_t l, int64_t c, const float* scale,
                                    const float* shift, int64_t mod_stride, float* out) const {
  check(x, "adaln x");
  check(scale, "adaln scale");
  check(shift, "adaln shift");
  check(out, "adaln out");
  CpuBackend::adaln_modulate(x, rows, l, c, scale, shift, mod_stride, out);
}

void EmulatedDevice::gated_residual_add(float* x, const float* y, int64_t rows, int64_t l, int64_t c,
                                        const float* gamma, int64_t mod_stride) const {
  check(x, "residual x");
  check(y, "residual y");
  check(gamma, "residual gamma");
  CpuBackend::gated_residual_add(x, y, rows, l, c, gamma, mod_stride);
}

void EmulatedDevice::silu(const float* x, int64_t n, float* y) const {
  check(x, "silu x");
  check(y, "silu y");
  CpuBackend::silu(x, n, y);
}

void EmulatedDevice::add_rows(const float* x, int64_t rows, int64_t n, const float* v, float* y) const {
  check(x, "add_rows x");
  check(v, "add_rows v");
  check(y, "add_rows y");
  CpuBackend::add_rows(x, rows, n, v, y);
}

void EmulatedDevice::gather_rows(const float* table, int64_t n, const int32_t* idx, int64_t count, float* out) const {
  check(table, "gather table");
  check(idx, "gather idx");
  check(out, "gather out");
  CpuBackend::gather_rows(table, n, idx, count, out);
}

void EmulatedDevice::attention(backend::KvCache& cache, int64_t r0, int64_t rows, const float* qkv, int64_t l,
                               int64_t p0, const float* scale_mul, std::span<const int> key_limit, float* out) const {
  check(qkv, "attention qkv");
  check(scale_mul, "attention scale_mul");
  check(out, "attention out");
  CpuBackend::attention(cache, r0, rows, qkv, l, p0, scale_mul, key_limit, out);
}

void EmulatedDevice::cfg(const float* logits, int64_t batch, int64_t n, int64_t vocab, const backend::ImageDraw* draws,
                         double ratio, float* out) const {
  check(logits, "cfg logits");
  check(draws, "cfg draws");
  check(out, "cfg out");
  CpuBackend::cfg(logits, batch, n, vocab, draws, ratio, out);
}

void EmulatedDevice::sample(const backend::SampleArgs& a) const {
  check(a.logits, "sample logits");
  check(a.draws, "sample draws");
  check(a.tokens, "sample tokens");
  check(a.h, "sample h");
  check(a.codebook->embedding, "sample codebook");
  CpuBackend::sample(a);
}

void EmulatedDevice::embed_tokens(const backend::CodebookWeights& codebook, const int64_t* idx, int64_t n,
                                  float* h) const {
  check(idx, "embed idx");
  check(h, "embed h");
  CpuBackend::embed_tokens(codebook, idx, n, h);
}

void EmulatedDevice::nearest_code(const backend::CodebookWeights& codebook, const float* z, int64_t n,
                                  int64_t* idx) const {
  check(z, "nearest z");
  check(idx, "nearest idx");
  CpuBackend::nearest_code(codebook, z, n, idx);
}

void EmulatedDevice::to_channel_major(const Tensor& x, Tensor& y) const {
  check(x, "to_channel_major x");
  check(y, "to_channel_major y");
  CpuBackend::to_channel_major(x, y);
}

void EmulatedDevice::to_token_major(const Tensor& x, Tensor& y) const {
  check(x, "to_token_major x");
  check(y, "to_token_major y");
  CpuBackend::to_token_major(x, y);
}

void EmulatedDevice::bicubic_resize(const Tensor& x, Tensor& y) const {
  check(x, "bicubic x");
  check(y, "bicubic y");
  CpuBackend::bicubic_resize(x, y);
}

void EmulatedDevice::area_resize(const Tensor& x, Tensor& y) const {
  check(x, "area x");
  check(y, "area y");
  CpuBackend::area_resize(x, y);
}

void EmulatedDevice::axpby(float a, const float* x, float b, const float* y, int64_t n, float* out) const {
  check(x, "axpby x");
  check(y, "axpby y");
  check(out, "axpby out");
  CpuBackend::axpby(a, x, b, y, n, out);
}

void EmulatedDevice::blend(float* f_hat, const float* gt, const float* keep, int64_t batch, int64_t c,
                           int64_t pp) const {
  check(f_hat, "blend f_hat");
  check(gt, "blend gt");
  check(keep, "blend keep");
  CpuBackend::blend(f_hat, gt, keep, batch, c, pp);
}

void EmulatedDevice::add_mul(const float* x, int64_t n, float add, float mul, float* out) const {
  check(x, "add_mul x");
  check(out, "add_mul out");
  CpuBackend::add_mul(x, n, add, mul, out);
}

void EmulatedDevice::conv2d(const backend::ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const {
  check(x, "conv2d x");
  check(y, "conv2d y");
  CpuBackend::conv2d(w, x, y, accumulate);
}

void EmulatedDevice::conv2d_nhwc(const backend::ConvWeights& w, const Tensor& x, Tensor& y, bool accumulate) const {
  check(x, "conv2d_nhwc x");
  check(y, "conv2d_nhwc y");
  CpuBackend::conv2d_nhwc(w, x, y, accumulate);
}

void EmulatedDevice::group_norm_nhwc(const Tensor& x, const Tensor& gamma, const Tensor& beta, int groups, float eps,
                                     bool fuse_silu, Tensor& y) const {
  check(x, "group_norm x");
  check(gamma, "group_norm gamma");
  check(beta, "group_norm beta");
  check(y, "group_norm y");
  CpuBackend::group_norm_nhwc(x, gamma, beta, groups, eps, fuse_silu, y);
}

void EmulatedDevice::upsample_nearest2x_nhwc(const Tensor& x, Tensor& y) const {
  check(x, "upsample x");
  check(y, "upsample y");
  CpuBackend::upsample_nearest2x_nhwc(x, y);
}

void EmulatedDevice::vae_attention_nhwc(const Tensor& qkv, Tensor& h) const {
  check(qkv, "vae_attention qkv");
  check(h, "vae_attention h");
  CpuBackend::vae_attention_nhwc(qkv, h);
}

void EmulatedDevice::nchw_to_nhwc(const Tensor& x, Tensor& y) const {
  check(x, "nchw_to_nhwc x");
  check(y, "nchw_to_nhwc y");
  CpuBackend::nchw_to_nhwc(x, y);
}

void EmulatedDevice::nhwc_to_nchw(const Tensor& x, Tensor& y, float lo, float hi) const {
  check(x, "nhwc_to_nchw x");
  check(y, "nhwc_to_nchw y");
  CpuBackend::nhwc_to_nchw(x, y, lo, hi);
}

}  // namespace varcode::test
