#include "kernels/cpu/gemm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "kernels/cpu/dnnl_context.hpp"
#include "kernels/cpu/fast_math.hpp"
#include "kernels/cpu/gemm_bf16.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "kernels/cpu/gemm_int8.hpp"

namespace varcode::kernels::cpu {

namespace {
dnnl::memory::data_type to_dnnl(DType dt) {
  switch (dt) {
    case DType::f32:
      return dnnl::memory::data_type::f32;
    case DType::bf16:
      return dnnl::memory::data_type::bf16;
    case DType::f16:
      return dnnl::memory::data_type::f16;
    default:
      throw Error("Linear: unsupported weight dtype " + std::string(dtype_name(dt)));
  }
}
}  // namespace

struct Linear::Impl {
  struct Prim {
    dnnl::inner_product_forward prim;
    dnnl::memory::desc src_md, dst_md, bias_md, scratchpad_md;
  };
  std::mutex mu;
  std::map<std::pair<int64_t, int>, std::shared_ptr<Prim>> prims;  // (M, epilogue) -> primitive
  dnnl::memory::desc packed_md;                                    // the weights in the layout the kernels want
  std::shared_ptr<void> packed;                                    // owned bytes of packed_md
  std::unique_ptr<Bf16Gemm> bf16_gemm;                             // set instead of the above on the avx512bf16 backend
  std::unique_ptr<F32Gemm> f32_gemm;                               // set instead of the above on the avx512f32 backend
  std::unique_ptr<Int8Gemm> int8_gemm;                             // int8 weights (the int8 backend)
};

namespace {
// The row count whose primitive decides the packed weight layout; the brgemm kernels' layout
// depends on N, K and the dtype, not on M, so every other M reuses it (checked per M).
constexpr int64_t kPackProbeRows = 64;

// oneDNN's inner product, not its matmul: on this library version (2.6) its brgemm kernels run
// about twice as fast for the same shapes (measured: bf16 358 vs 188 GFLOP/s at 512x1024x4096).
dnnl::inner_product_forward::primitive_desc make_pd(int64_t m, int64_t k, int64_t n, dnnl::memory::data_type wdt,
                                                    const dnnl::memory::desc& wei_md, bool has_bias,
                                                    Epilogue epilogue) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  dnnl::memory::desc src_md({m, k}, wdt, tag::ab);
  dnnl::memory::desc dst_md({m, n}, dt::f32, tag::ab);
  dnnl::primitive_attr attr = user_scratchpad_attr();  // shared by concurrent requests
  if (epilogue == Epilogue::gelu_tanh) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_tanh, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  const auto pk = dnnl::prop_kind::forward_inference;
  auto desc =
      has_bias ? dnnl::inner_product_forward::desc(pk, src_md, wei_md, dnnl::memory::desc({n}, dt::f32, tag::a), dst_md)
               : dnnl::inner_product_forward::desc(pk, src_md, wei_md, dst_md);
  return dnnl::inner_product_forward::primitive_desc(desc, attr, dnnl_engine());
}

// The backend for a layer when the caller leaves it open: oneDNN if VARCODE_GEMM=onednn, else the
// hand-written kernel for the weight dtype where the CPU runs it (both measured faster than
// oneDNN 2.6 here, issue #5).
GemmBackend default_backend(DType weight_dtype) {
  static const bool force_onednn = [] {
    const char* env = std::getenv("VARCODE_GEMM");
    const std::string v = env ? env : "";
    if (!v.empty() && v != "onednn" && v != "auto") throw Error("VARCODE_GEMM must be onednn or auto, got '" + v + "'");
    return v == "onednn";
  }();
  if (force_onednn) return GemmBackend::onednn;
  if (weight_dtype == DType::bf16 && Bf16Gemm::supported()) return GemmBackend::avx512bf16;
  if (weight_dtype == DType::f32 && F32Gemm::supported()) return GemmBackend::avx512f32;
  return GemmBackend::onednn;
}
}  // namespace

GemmBackend default_bf16_backend() { return default_backend(DType::bf16); }

Linear::Linear(Tensor weight, Tensor bias, GemmBackend backend) : bias_(std::move(bias)) {
  using tag = dnnl::memory::format_tag;
  if (weight.ndim() != 2) throw Error("Linear: weight must be 2-D, got " + shape_str(weight.shape()));
  n_ = weight.dim(0);
  k_ = weight.dim(1);
  dtype_ = weight.dtype();
  if (dtype_ == DType::i8) throw Error("Linear: int8 weights need their scales (Linear::int8)");
  if (bias_.defined() && bias_.numel() != 0) {
    if (bias_.numel() != n_)
      throw Error("Linear: bias has " + std::to_string(bias_.numel()) + " elements, expected " + std::to_string(n_));
    if (bias_.dtype() != DType::f32) bias_ = bias_.to(DType::f32);
  }
  impl_ = std::make_unique<Impl>();
  if (backend == GemmBackend::automatic) backend = default_backend(dtype_);
  if (backend == GemmBackend::int8)
    throw Error("Linear: the int8 backend needs int8 weights (Linear::int8 or Linear::quantize_int8)");
  if (backend == GemmBackend::avx512bf16) {
    if (dtype_ != DType::bf16) throw Error("Linear: the avx512bf16 backend needs bf16 weights");
    impl_->bf16_gemm = std::make_unique<Bf16Gemm>(static_cast<const uint16_t*>(weight.raw()), n_, k_);
    return;
  }
  if (backend == GemmBackend::avx512f32) {
    if (dtype_ != DType::f32) throw Error("Linear: the avx512f32 backend needs f32 weights");
    impl_->f32_gemm = std::make_unique<F32Gemm>(static_cast<const float*>(weight.raw()), n_, k_);
    return;
  }
  // Pack once: the stored [N, K] (PyTorch's [out, in]) is reordered into the kernels' blocked
  // layout; the source (often a file mapping) is not kept.
  const auto wdt = to_dnnl(dtype_);
  dnnl::memory::desc plain_md({n_, k_}, wdt, tag::ab);
  auto probe = make_pd(kPackProbeRows, k_, n_, wdt, dnnl::memory::desc({n_, k_}, wdt, tag::any),
                       bias_.defined() && bias_.numel() != 0, Epilogue::none);
  impl_->packed_md = probe.weights_desc();
  const size_t bytes = impl_->packed_md.get_size();
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p)
    throw Error("Linear: out of memory packing a [" + std::to_string(n_) + ", " + std::to_string(k_) + "] weight");
  impl_->packed = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  dnnl::memory src(plain_md, dnnl_engine(), const_cast<void*>(weight.raw()));
  dnnl::memory dst(impl_->packed_md, dnnl_engine(), impl_->packed.get());
  dnnl::reorder(src, dst).execute(dnnl_stream(), src, dst);
  dnnl_stream().wait();
}

Linear Linear::int8(Tensor weight, Tensor scale, Tensor bias) {
  if (weight.ndim() != 2 || weight.dtype() != DType::i8)
    throw Error("Linear::int8: weight must be 2-D i8, got " + std::string(dtype_name(weight.dtype())) + " " +
                shape_str(weight.shape()));
  const int64_t n = weight.dim(0), k = weight.dim(1);
  if (scale.dtype() != DType::f32 || scale.numel() != n)
    throw Error("Linear::int8: scale must be f32 [" + std::to_string(n) + "], got " +
                std::string(dtype_name(scale.dtype())) + " " + shape_str(scale.shape()));
  const std::string why = int8_unsupported_reason();
  if (!why.empty()) throw Error(why);
  Linear l;
  l.n_ = n;
  l.k_ = k;
  l.dtype_ = DType::i8;
  l.bias_ = std::move(bias);
  if (l.bias_.defined() && l.bias_.numel() != 0) {
    if (l.bias_.numel() != n)
      throw Error("Linear: bias has " + std::to_string(l.bias_.numel()) + " elements, expected " + std::to_string(n));
    if (l.bias_.dtype() != DType::f32) l.bias_ = l.bias_.to(DType::f32);
  }
  l.impl_ = std::make_unique<Impl>();
  l.impl_->int8_gemm = std::make_unique<Int8Gemm>(weight.data<int8_t>(), scale.data<float>(), n, k);
  return l;
}

Linear Linear::quantize_int8(const Tensor& weight, Tensor bias) {
  if (weight.ndim() != 2) throw Error("Linear: weight must be 2-D, got " + shape_str(weight.shape()));
  const std::string why = int8_unsupported_reason();
  if (!why.empty()) throw Error(why);
  const int64_t n = weight.dim(0), k = weight.dim(1);
  const Tensor w = weight.dtype() == DType::f32 ? weight : weight.to(DType::f32);  // [N, K]
  Tensor q = Tensor::empty(DType::i8, {n, k});                                     // [N, K]
  Tensor scale = Tensor::empty(DType::f32, {n});                                   // [N]
  quantize_weights_int8(w.data<float>(), n, k, q.data<int8_t>(), scale.data<float>());
  return int8(std::move(q), std::move(scale), std::move(bias));
}

Linear::Linear() = default;
Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

size_t Linear::packed_bytes() const {
  if (!impl_) return 0;
  if (impl_->bf16_gemm) return impl_->bf16_gemm->packed_bytes();
  if (impl_->f32_gemm) return impl_->f32_gemm->packed_bytes();
  if (impl_->int8_gemm) return impl_->int8_gemm->packed_bytes();
  return impl_->packed_md.get_size();
}

GemmBackend Linear::backend() const {
  if (impl_ && impl_->bf16_gemm) return GemmBackend::avx512bf16;
  if (impl_ && impl_->f32_gemm) return GemmBackend::avx512f32;
  if (impl_ && impl_->int8_gemm) return GemmBackend::int8;
  return GemmBackend::onednn;
}

void Linear::forward(const float* x, int64_t m, float* y, Epilogue epilogue) const {
  if (m == 0) return;
  const bool has_bias = bias_.defined() && bias_.numel() != 0;
  if (impl_->bf16_gemm) {
    impl_->bf16_gemm->forward(x, m, has_bias ? bias_.data<float>() : nullptr, y, epilogue == Epilogue::gelu_tanh);
    return;
  }
  if (impl_->f32_gemm) {
    impl_->f32_gemm->forward(x, m, has_bias ? bias_.data<float>() : nullptr, y, epilogue == Epilogue::gelu_tanh);
    return;
  }
  if (impl_->int8_gemm) {
    impl_->int8_gemm->forward(x, m, has_bias ? bias_.data<float>() : nullptr, y, epilogue == Epilogue::gelu_tanh);
    return;
  }
  const auto& eng = dnnl_engine();
  std::shared_ptr<Impl::Prim> p;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto key = std::make_pair(m, static_cast<int>(epilogue));
    auto it = impl_->prims.find(key);
    if (it != impl_->prims.end()) {
      p = it->second;
    } else {
      p = std::make_shared<Impl::Prim>();
      auto pd = make_pd(m, k_, n_, to_dnnl(dtype_), impl_->packed_md, has_bias, epilogue);
      if (pd.weights_desc() != impl_->packed_md)
        throw Error("internal: oneDNN wants another weight layout for " + std::to_string(m) + " rows");
      p->src_md = pd.src_desc();
      p->dst_md = pd.dst_desc();
      p->scratchpad_md = pd.scratchpad_desc();
      if (has_bias) p->bias_md = pd.bias_desc();
      p->prim = dnnl::inner_product_forward(pd);
      impl_->prims.emplace(key, p);
    }
  }
  const void* src = x;
  if (dtype_ == DType::bf16) {
    // A per-thread staging buffer: the activations change dtype on every call, and a fresh
    // allocation each time costs page faults.
    thread_local std::vector<uint16_t> staging;
    if (staging.size() < static_cast<size_t>(m * k_)) staging.resize(static_cast<size_t>(m * k_));
    convert_f32_to_bf16(x, staging.data(), m * k_);
    src = staging.data();
  } else if (dtype_ != DType::f32) {
    throw Error("Linear: compute in " + std::string(dtype_name(dtype_)) + " is not supported");
  }
  dnnl::memory src_mem(p->src_md, eng, const_cast<void*>(src));
  dnnl::memory wei_mem(impl_->packed_md, eng, impl_->packed.get());
  dnnl::memory dst_mem(p->dst_md, eng, y);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, wei_mem}, {DNNL_ARG_DST, dst_mem}};
  if (has_bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p->bias_md, eng, const_cast<void*>(bias_.raw())));
  args.emplace(DNNL_ARG_SCRATCHPAD, thread_scratchpad(p->scratchpad_md));
  auto& strm = dnnl_stream();
  p->prim.execute(strm, args);
  strm.wait();
}

namespace {
VARCODE_SIMD_CLONES void convert_chunk(const float* x, uint16_t* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_round_finite(x[i]);
}
}  // namespace

void convert_f32_to_bf16(const float* x, uint16_t* y, int64_t n) {
  constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for if (n > kChunk) schedule(static)
  for (int64_t b = 0; b < n; b += kChunk) convert_chunk(x + b, y + b, std::min(kChunk, n - b));
}

float gelu_tanh(float x) {
  const double c = std::sqrt(2.0 / M_PI);
  double xd = x;
  return static_cast<float>(0.5 * xd * (1.0 + std::tanh(c * (xd + 0.044715 * xd * xd * xd))));
}

}  // namespace varcode::kernels::cpu
