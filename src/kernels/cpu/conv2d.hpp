// 2-D convolution with bias (PyTorch Conv2d semantics) on oneDNN primitives.
//
// The activation layout and dtype are private to conv2d.cpp and to the callers' activation
// buffers: today every tensor crossing this interface is f32 NCHW; a bf16 or channels-last path
// changes the descriptors made in conv2d.cpp, not the callers' arithmetic.
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
  // y += conv(x) + bias, the residual sum fused into the convolution. y [B, O, Ho, Wo] must not
  // alias x.
  void forward_accumulate(const Tensor& x, Tensor& y) const;

 private:
  struct State;
  void run(const Tensor& x, Tensor& y, bool accumulate) const;
  std::shared_ptr<State> state_;
};

}  // namespace varcode::kernels::cpu
