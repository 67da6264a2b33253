// Linear layers (y = x W^T + b) on oneDNN matmul, weights kept in PyTorch's [out, in] layout.
#pragma once
#include <cstdint>
#include <memory>

#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

enum class Epilogue { none, gelu_tanh };

// Which kernels run a bf16 layer. automatic: VARCODE_GEMM (onednn | avx512bf16) if set, else the
// hand-written AVX512-BF16 GEMM (gemm_bf16.hpp) where the CPU has it, else oneDNN. f32 weights
// always run on oneDNN.
enum class GemmBackend { automatic, onednn, avx512bf16 };

// What `automatic` resolves to for bf16 weights on this CPU and environment. The bf16 KV cache
// (attention.hpp) follows it: VARCODE_GEMM=onednn turns every hand-written bf16 kernel off.
GemmBackend default_bf16_backend();

// An immutable linear layer. The weight tensor may borrow from a mapped checkpoint; primitives
// are created per row count on first use and reused (thread-safe). The weight is packed once
// into oneDNN's blocked layout at construction; the source tensor is not kept. Compute dtype follows the
// stored weight: f32 weights run in f32; bf16 weights run bf16 x bf16 -> f32 accumulation, on
// oneDNN or on the AVX512-BF16 kernel (see GemmBackend).
class Linear {
 public:
  Linear();
  // weight [N, K] (f32 or bf16), bias [N] f32 or undefined. Asking for avx512bf16 on a CPU
  // without it, or for f32 weights, throws.
  Linear(Tensor weight, Tensor bias, GemmBackend backend = GemmBackend::automatic);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  int64_t in_features() const { return k_; }
  int64_t out_features() const { return n_; }
  DType dtype() const { return dtype_; }
  GemmBackend backend() const;  // onednn or avx512bf16 (never automatic)
  size_t packed_bytes() const;

  // x [M, K] f32 row-major -> y [M, N] f32 row-major (y may not alias x).
  void forward(const float* x, int64_t m, float* y, Epilogue epilogue = Epilogue::none) const;

 private:
  struct Impl;
  DType dtype_ = DType::f32;
  Tensor bias_;  // [N]
  int64_t n_ = 0, k_ = 0;
  std::unique_ptr<Impl> impl_;
};

// Plain reference used by tests: y = x W^T + b (+ GELU-tanh), double accumulation.
void linear_reference(const float* x, int64_t m, const float* w, const float* b, int64_t n, int64_t k, float* y,
                      Epilogue epilogue);

float gelu_tanh(float x);

// Vectorised f32 -> bf16 (round to nearest even) for finite activations.
void convert_f32_to_bf16(const float* x, uint16_t* y, int64_t n);

}  // namespace varcode::kernels::cpu
