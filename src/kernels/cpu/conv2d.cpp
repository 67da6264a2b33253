#include "kernels/cpu/conv2d.hpp"

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/cpu/dnnl_context.hpp"

namespace varcode::kernels::cpu {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

// The layout of activations at this interface (the callers' buffers). Changing it (e.g. to nhwc)
// is the whole of a channels-last switch for the convolutions.
constexpr tag kActivationTag = tag::nchw;
// The layout the convolution computes in: oneDNN's choice. For f32 NCHW it would otherwise run
// im2col + GEMM; its blocked direct kernels are ~1.6x faster, far more than the two activation
// reorders cost (a few ms per layer at 256 px).
constexpr tag kComputeTag = tag::any;

struct Key {
  int64_t n, h, w;
  bool accumulate;
  bool nhwc = false;  // forward_nhwc: channels-last user buffers, no reorders
  memory::data_type src_dt = memory::data_type::f32, dst_dt = memory::data_type::f32;
  auto tie() const { return std::tie(n, h, w, accumulate, nhwc, src_dt, dst_dt); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

memory::data_type dnnl_dtype(DType dt) { return dt == DType::bf16 ? memory::data_type::bf16 : memory::data_type::f32; }

struct Plan {
  dnnl::convolution_forward conv;
  memory::desc user_src_md, user_dst_md;  // kActivationTag
  memory::desc src_md, dst_md;            // the primitive's
  memory::desc scratchpad_md;             // run with thread_scratchpad (dnnl_context.hpp)
  memory weights;                         // in the primitive's preferred layout
};

}  // namespace

struct Conv2d::State {
  Tensor weight;  // [O, I, kh, kw], as given
  Tensor bias;    // [O]
  Conv2dGeometry geo;
  int out_ch = 0, in_ch = 0, kh = 0, kw = 0;

  std::mutex mutex;
  std::map<Key, Plan> plans;
  // Reordered weights by layout, so that shapes whose primitives agree on it share one copy.
  std::vector<std::pair<memory::desc, memory>> reordered;

  memory weights_for(const memory::desc& md) {
    for (auto& [d, m] : reordered)
      if (d == md) return m;
    const auto& eng = dnnl_engine();
    memory user({{out_ch, in_ch, kh, kw}, memory::data_type::f32, tag::oihw}, eng,
                const_cast<float*>(weight.data<float>()));
    memory m = user;
    if (md != user.get_desc()) {
      m = memory(md, eng);
      dnnl::reorder(user, m).execute(dnnl_stream(), user, m);
      dnnl_stream().wait();
    }
    reordered.emplace_back(md, m);
    return m;
  }

  const Plan& plan_for(const Key& key) {
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    const auto& eng = dnnl_engine();
    const int64_t ho = (key.h + geo.pad_top + geo.pad_bottom - kh) / geo.stride + 1;
    const int64_t wo = (key.w + geo.pad_left + geo.pad_right - kw) / geo.stride + 1;
    const tag user_tag = key.nhwc ? tag::nhwc : kActivationTag;
    // Channels-last runs as given: oneDNN's direct kernels take nhwc (f32 and bf16) at about the
    // speed of their blocked layout, and no reorder is paid.
    const tag compute_tag = key.nhwc ? tag::nhwc : kComputeTag;
    memory::desc user_src_md({key.n, in_ch, key.h, key.w}, key.src_dt, user_tag);
    memory::desc user_dst_md({key.n, out_ch, ho, wo}, key.dst_dt, user_tag);
    memory::desc src_md({key.n, in_ch, key.h, key.w}, key.src_dt, compute_tag);
    memory::desc dst_md({key.n, out_ch, ho, wo}, key.dst_dt, compute_tag);
    // bf16 activations take bf16 weights (what the bf16 kernels multiply); f32 accumulation.
    memory::desc w_md({out_ch, in_ch, kh, kw}, key.src_dt, tag::any);
    memory::desc b_md({out_ch}, memory::data_type::f32, tag::x);
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                         src_md, w_md, b_md, dst_md, {geo.stride, geo.stride},
                                         {geo.pad_top, geo.pad_left}, {geo.pad_bottom, geo.pad_right});
    dnnl::primitive_attr attr = user_scratchpad_attr();
    if (key.accumulate) {
      // dst = (conv + bias) + dst: the residual add of a ResnetBlock, same rounding as PyTorch.
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    dnnl::convolution_forward::primitive_desc pd(desc, attr, eng);
    Plan plan{
        dnnl::convolution_forward(pd), user_src_md, user_dst_md, pd.src_desc(), pd.dst_desc(), pd.scratchpad_desc(),
        weights_for(pd.weights_desc())};
    return plans.emplace(key, std::move(plan)).first->second;
  }
};

Conv2d::Conv2d(Tensor weight, Tensor bias, Conv2dGeometry geometry) : state_(std::make_shared<State>()) {
  if (weight.dtype() != DType::f32 || weight.ndim() != 4)
    throw Error("conv2d: weight must be f32 [O, I, kh, kw], got " + shape_str(weight.shape()));
  if (bias.dtype() != DType::f32 || bias.ndim() != 1 || bias.dim(0) != weight.dim(0))
    throw Error("conv2d: bias must be f32 [" + std::to_string(weight.dim(0)) + "], got " + shape_str(bias.shape()));
  if (geometry.stride < 1) throw Error("conv2d: stride must be positive");
  state_->weight = std::move(weight);
  state_->bias = std::move(bias);
  state_->geo = geometry;
  state_->out_ch = static_cast<int>(state_->weight.dim(0));
  state_->in_ch = static_cast<int>(state_->weight.dim(1));
  state_->kh = static_cast<int>(state_->weight.dim(2));
  state_->kw = static_cast<int>(state_->weight.dim(3));
}

int Conv2d::in_channels() const { return state_->in_ch; }
int Conv2d::out_channels() const { return state_->out_ch; }
int Conv2d::kernel_h() const { return state_->kh; }
int Conv2d::kernel_w() const { return state_->kw; }
int Conv2d::out_h(int h) const {
  return (h + state_->geo.pad_top + state_->geo.pad_bottom - state_->kh) / state_->geo.stride + 1;
}
int Conv2d::out_w(int w) const {
  return (w + state_->geo.pad_left + state_->geo.pad_right - state_->kw) / state_->geo.stride + 1;
}

Tensor Conv2d::forward(const Tensor& x) const {
  if (!state_) throw Error("conv2d: layer not initialised");
  if (x.ndim() != 4) throw Error("conv2d: input must be [B, C, H, W], got " + shape_str(x.shape()));
  Tensor y = Tensor::empty(DType::f32, {x.dim(0), out_channels(), out_h(static_cast<int>(x.dim(2))),
                                        out_w(static_cast<int>(x.dim(3)))});  // [B, O, Ho, Wo]
  run(x, y, false);
  return y;
}

void Conv2d::forward_accumulate(const Tensor& x, Tensor& y) const {
  if (!state_) throw Error("conv2d: layer not initialised");
  run(x, y, true);
}

void Conv2d::run(const Tensor& x, Tensor& y, bool accumulate) const {
  if (x.dtype() != DType::f32 || x.ndim() != 4 || x.dim(1) != in_channels())
    throw Error("conv2d: input must be f32 [B, " + std::to_string(in_channels()) + ", H, W], got " +
                shape_str(x.shape()));
  if (x.dim(2) + state_->geo.pad_top + state_->geo.pad_bottom < state_->kh ||
      x.dim(3) + state_->geo.pad_left + state_->geo.pad_right < state_->kw)
    throw Error("conv2d: input " + shape_str(x.shape()) + " is smaller than the kernel");
  const Shape want{x.dim(0), out_channels(), out_h(static_cast<int>(x.dim(2))), out_w(static_cast<int>(x.dim(3)))};
  if (y.dtype() != DType::f32 || y.shape() != want)
    throw Error("conv2d: output must be f32 " + shape_str(want) + ", got " + shape_str(y.shape()));
  if (x.numel() > 0 && x.raw() == y.raw()) throw Error("conv2d: output must not alias the input");

  Plan plan;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    plan = state_->plan_for(
        {x.dim(0), x.dim(2), x.dim(3), accumulate, false, memory::data_type::f32, memory::data_type::f32});
  }
  const auto& eng = dnnl_engine();
  auto& stream = dnnl_stream();
  memory user_src(plan.user_src_md, eng, const_cast<void*>(x.raw()));
  memory user_dst(plan.user_dst_md, eng, y.raw());
  memory src = user_src, dst = user_dst;
  const bool blocked_dst = plan.dst_md != plan.user_dst_md;
  if (plan.src_md != plan.user_src_md) {
    src = memory(plan.src_md, eng);
    dnnl::reorder(user_src, src).execute(stream, user_src, src);
  }
  if (blocked_dst) {
    dst = memory(plan.dst_md, eng);
    if (accumulate) dnnl::reorder(user_dst, dst).execute(stream, user_dst, dst);  // the residual to add onto
  }
  memory bias({{out_channels()}, memory::data_type::f32, tag::x}, eng, const_cast<float*>(state_->bias.data<float>()));
  plan.conv.execute(stream, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_WEIGHTS, plan.weights},
                             {DNNL_ARG_BIAS, bias},
                             {DNNL_ARG_DST, dst},
                             {DNNL_ARG_SCRATCHPAD, thread_scratchpad(plan.scratchpad_md)}});
  if (blocked_dst) dnnl::reorder(dst, user_dst).execute(stream, dst, user_dst);
  stream.wait();
}

void Conv2d::forward_nhwc(const Tensor& x, Tensor& y, bool accumulate) const {
  if (!state_) throw Error("conv2d: layer not initialised");
  const auto ok_dtype = [](const Tensor& t) { return t.dtype() == DType::f32 || t.dtype() == DType::bf16; };
  if (!ok_dtype(x) || x.ndim() != 4 || x.dim(3) != in_channels())
    throw Error("conv2d: channels-last input must be f32 or bf16 [B, H, W, " + std::to_string(in_channels()) +
                "], got " + shape_str(x.shape()));
  if (x.dim(1) + state_->geo.pad_top + state_->geo.pad_bottom < state_->kh ||
      x.dim(2) + state_->geo.pad_left + state_->geo.pad_right < state_->kw)
    throw Error("conv2d: input " + shape_str(x.shape()) + " is smaller than the kernel");
  const Shape want{x.dim(0), out_h(static_cast<int>(x.dim(1))), out_w(static_cast<int>(x.dim(2))), out_channels()};
  if (!ok_dtype(y) || y.shape() != want)
    throw Error("conv2d: channels-last output must be f32 or bf16 " + shape_str(want) + ", got " +
                shape_str(y.shape()));
  if (x.dtype() == DType::f32 && y.dtype() == DType::bf16)
    throw Error("conv2d: a bf16 channels-last output needs a bf16 input");
  if (x.numel() > 0 && x.raw() == y.raw()) throw Error("conv2d: output must not alias the input");
  if (y.numel() == 0) return;

  Plan plan;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    plan = state_->plan_for(
        {x.dim(0), x.dim(1), x.dim(2), accumulate, true, dnnl_dtype(x.dtype()), dnnl_dtype(y.dtype())});
  }
  const auto& eng = dnnl_engine();
  auto& stream = dnnl_stream();
  memory src(plan.src_md, eng, const_cast<void*>(x.raw()));
  memory dst(plan.dst_md, eng, y.raw());
  memory bias({{out_channels()}, memory::data_type::f32, tag::x}, eng, const_cast<float*>(state_->bias.data<float>()));
  plan.conv.execute(stream, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_WEIGHTS, plan.weights},
                             {DNNL_ARG_BIAS, bias},
                             {DNNL_ARG_DST, dst},
                             {DNNL_ARG_SCRATCHPAD, thread_scratchpad(plan.scratchpad_md)}});
  stream.wait();
}

}  // namespace varcode::kernels::cpu
