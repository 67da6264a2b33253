// Hand-written AVX-512F GEMM for the f32 linear layers: y = x W^T + b (+ GELU-tanh) with f32
// FMAs (vfmadd231ps). Used by Linear on CPUs with avx512f; elsewhere (and with
// VARCODE_GEMM=onednn) Linear keeps oneDNN. The bf16 twin is gemm_bf16.hpp.
#pragma once
#include <cstdint>
#include <memory>

namespace varcode::kernels::cpu {

class F32Gemm {
 public:
  // True when this CPU (and OS) runs AVX-512F: the kernel may only be built and run then.
  static bool supported();

  // w [N, K] f32 (PyTorch's [out, in]), packed once; the source is not kept.
  F32Gemm(const float* w, int64_t n, int64_t k);
  ~F32Gemm();
  F32Gemm(const F32Gemm&) = delete;
  F32Gemm& operator=(const F32Gemm&) = delete;

  // x [M, K] f32 -> y [M, N] f32 (y may not alias x); bias [N] f32 or null; gelu applies
  // GELU-tanh after the bias. Threads: OpenMP, like oneDNN's CPU runtime here.
  void forward(const float* x, int64_t m, const float* bias, float* y, bool gelu) const;

  size_t packed_bytes() const { return packed_elems_ * sizeof(float); }

 private:
  int64_t n_ = 0, k_ = 0;
  size_t packed_elems_ = 0;
  std::unique_ptr<float, void (*)(void*)> packed_;  // [ceil(N/64)] panels of [K][<=64]
};

}  // namespace varcode::kernels::cpu
