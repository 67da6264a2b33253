#include "kernels/cpu/gemm.hpp"

#include <cmath>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/cpu/dnnl_context.hpp"

namespace varcode::kernels::cpu {

namespace {
dnnl::memory::data_type to_dnnl(DType dt) {
  switch (dt) {
    case DType::f32: return dnnl::memory::data_type::f32;
    case DType::bf16: return dnnl::memory::data_type::bf16;
    case DType::f16: return dnnl::memory::data_type::f16;
    default: throw Error("Linear: unsupported weight dtype " + std::string(dtype_name(dt)));
  }
}
}  // namespace

struct Linear::Impl {
  struct Prim {
    dnnl::matmul prim;
    dnnl::memory::desc src_md, wei_md, dst_md, bias_md;
  };
  std::mutex mu;
  std::map<std::pair<int64_t, int>, std::shared_ptr<Prim>> prims;  // (M, epilogue) -> primitive
};

Linear::Linear(Tensor weight, Tensor bias) : weight_(std::move(weight)), bias_(std::move(bias)) {
  if (weight_.ndim() != 2) throw Error("Linear: weight must be 2-D, got " + shape_str(weight_.shape()));
  n_ = weight_.dim(0);
  k_ = weight_.dim(1);
  if (bias_.defined() && bias_.numel() != 0) {
    if (bias_.numel() != n_) throw Error("Linear: bias has " + std::to_string(bias_.numel()) + " elements, expected " + std::to_string(n_));
    if (bias_.dtype() != DType::f32) bias_ = bias_.to(DType::f32);
  }
  impl_ = std::make_unique<Impl>();
}

Linear::Linear() = default;
Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

void Linear::forward(const float* x, int64_t m, float* y, Epilogue epilogue) const {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  if (m == 0) return;
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
      const dt wdt = to_dnnl(weight_.dtype());
      // bf16 weights take bf16 activations; the conversion of x happens below.
      p->src_md = dnnl::memory::desc({m, k_}, wdt, tag::ab);
      // W^T viewed in place: logical [K, N] with strides (1, K) is the stored [N, K].
      p->wei_md = dnnl::memory::desc({k_, n_}, wdt, tag::ba);
      p->dst_md = dnnl::memory::desc({m, n_}, dt::f32, tag::ab);
      const bool has_bias = bias_.defined() && bias_.numel() != 0;
      if (has_bias) p->bias_md = dnnl::memory::desc({1, n_}, dt::f32, tag::ab);
      dnnl::primitive_attr attr;
      if (epilogue == Epilogue::gelu_tanh) {
        dnnl::post_ops ops;
        ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_tanh, 0.0f, 0.0f);
        attr.set_post_ops(ops);
      }
      auto desc = has_bias ? dnnl::matmul::desc(p->src_md, p->wei_md, p->bias_md, p->dst_md)
                           : dnnl::matmul::desc(p->src_md, p->wei_md, p->dst_md);
      p->prim = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, eng));
      impl_->prims.emplace(key, p);
    }
  }
  Tensor x_conv;
  const void* src = x;
  if (weight_.dtype() != DType::f32) {
    x_conv = Tensor::borrow(DType::f32, {m, k_}, x, nullptr).to(weight_.dtype());
    src = x_conv.raw();
  }
  dnnl::memory src_mem(p->src_md, eng, const_cast<void*>(src));
  dnnl::memory wei_mem(p->wei_md, eng, const_cast<void*>(weight_.raw()));
  dnnl::memory dst_mem(p->dst_md, eng, y);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, wei_mem}, {DNNL_ARG_DST, dst_mem}};
  if (bias_.defined() && bias_.numel() != 0)
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(p->bias_md, eng, const_cast<void*>(bias_.raw())));
  auto& strm = dnnl_stream();
  p->prim.execute(strm, args);
  strm.wait();
}

float gelu_tanh(float x) {
  const double c = std::sqrt(2.0 / M_PI);
  double xd = x;
  return static_cast<float>(0.5 * xd * (1.0 + std::tanh(c * (xd + 0.044715 * xd * xd * xd))));
}

void linear_reference(const float* x, int64_t m, const float* w, const float* b, int64_t n, int64_t k, float* y,
                      Epilogue epilogue) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = b ? b[j] : 0.0;
      for (int64_t t = 0; t < k; ++t) acc += static_cast<double>(x[i * k + t]) * w[j * k + t];
      float v = static_cast<float>(acc);
      y[i * n + j] = epilogue == Epilogue::gelu_tanh ? gelu_tanh(v) : v;
    }
}

}  // namespace varcode::kernels::cpu
