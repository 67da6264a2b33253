// 2-D convolution with bias (PyTorch Conv2d semantics) on oneDNN primitives.
//
// Two interfaces: forward / forward_accumulate take f32 NCHW tensors (reordered to oneDNN's blocked
// layout and back around every call: simple callers, small maps), forward_nhwc takes channels-last
// tensors in f32 or bf16 and runs on them directly, for callers that keep that layout end to end
// (the VQ-VAE).
#pragma once
#include <memory>

#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

struct Conv2dGeometry {
  int stride = 1;
  // Zero padding per side; asymmetric padding serves the encoder's downsample (right / bottom only).
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;

  static Conv2dGeometry same(int kernel) {  // stride 1, output size = input size (odd kernel)
    const int p = kernel / 2;
    return {1, p, p, p, p};
  }
};

// One convolution layer. Primitives are created once per input shape and cached; the weights are
// reordered once into the layout the primitive prefers. Copies share the cache; const methods are
// safe to call from several threads.
class Conv2d {
 public:
  Conv2d() = default;
  // weight [O, I, kh, kw] f32, bias [O] f32.
  Conv2d(Tensor weight, Tensor bias, Conv2dGeometry geometry);

  bool defined() const { return state_ != nullptr; }
  int in_channels() const;
  int out_channels() const;
  int kernel_h() const;
  int kernel_w() const;
  // Output spatial size for an input of h x w.
  int out_h(int h) const;
  int out_w(int w) const;

  // y = conv(x) + bias.  x [B, I, H, W] -> [B, O, Ho, Wo]
  Tensor forward(const Tensor& x) const;
  // NCHW into a given output, y = conv(x) (+ y when accumulate).
  void forward_into(const Tensor& x, Tensor& y, bool accumulate) const { run(x, y, accumulate); }
  // y += conv(x) + bias, the residual sum fused into the convolution. y [B, O, Ho, Wo] must not
  // alias x.
  void forward_accumulate(const Tensor& x, Tensor& y) const;

  // Channels-last, no reorders: x [B, H, W, I] f32 or bf16 -> y [B, Ho, Wo, O] f32 or bf16;
  // y = conv(x) + bias, or y += conv(x) + bias when `accumulate`. The weights are used in x's
  // dtype (a bf16 copy is made once); accumulation is f32 inside oneDNN. A bf16 y needs a bf16 x
  // (oneDNN's f32 kernels write f32 only). y must not alias x.
  void forward_nhwc(const Tensor& x, Tensor& y, bool accumulate) const;

 private:
  struct State;
  void run(const Tensor& x, Tensor& y, bool accumulate) const;
  std::shared_ptr<State> state_;
};

}  // namespace varcode::kernels::cpu
