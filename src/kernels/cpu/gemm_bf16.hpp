// Hand-written AVX512-BF16 GEMM for the bf16 linear layers: y = x W^T + b (+ GELU-tanh) with
// bf16 x bf16 products (vdpbf16ps) accumulated in f32. Used by Linear on CPUs with avx512_bf16;
// elsewhere (and with VARCODE_GEMM=onednn) Linear keeps oneDNN.
#pragma once
#include <cstdint>
#include <memory>

namespace varcode::kernels::cpu {

class Bf16Gemm {
 public:
  // True when this CPU (and OS) runs AVX512-BF16: the kernel may only be built and run then.
  static bool supported();

  // w [N, K] bf16 bits (PyTorch's [out, in]), packed once; the source is not kept.
  Bf16Gemm(const uint16_t* w, int64_t n, int64_t k);
  ~Bf16Gemm();
  Bf16Gemm(const Bf16Gemm&) = delete;
  Bf16Gemm& operator=(const Bf16Gemm&) = delete;

  // x [M, K] f32 -> y [M, N] f32 (y may not alias x); bias [N] f32 or null; gelu applies
  // GELU-tanh after the bias. Threads: OpenMP, like oneDNN's CPU runtime here.
  void forward(const float* x, int64_t m, const float* bias, float* y, bool gelu) const;

  size_t packed_bytes() const { return packed_elems_ * sizeof(uint16_t); }

 private:
  int64_t n_ = 0, k_ = 0;
  int64_t kp_ = 0;  // K rounded up to even: vdpbf16ps consumes K in pairs
  size_t packed_elems_ = 0;
  std::unique_ptr<uint16_t, void (*)(void*)> packed_;  // [ceil(N/64)] panels of [K/2][<=64][2]
};

}  // namespace varcode::kernels::cpu
