// Linear layers (y = x W^T + b) on hand-written AVX-512 GEMMs or oneDNN's inner product, weights
// given in PyTorch's [out, in] layout.
#pragma once
#include <cstdint>
#include <memory>

#include "varcode/tensor.hpp"

namespace varcode::kernels::cpu {

enum class Epilogue { none, gelu_tanh };

// Which kernels run a layer. automatic: oneDNN if VARCODE_GEMM=onednn, else the hand-written
// GEMM for the weight dtype where the CPU runs it (avx512bf16: gemm_bf16.hpp for bf16 weights,
// avx512f32: gemm_f32.hpp for f32 weights), else oneDNN. int8 weights always run on int8
// (gemm_int8.hpp, on the VNNI kernel of int8_isa()), which has no oneDNN fallback.
enum class GemmBackend { automatic, onednn, avx512bf16, avx512f32, int8 };

// What `automatic` resolves to for bf16 weights on this CPU and environment. The bf16 KV cache
// (attention.hpp) follows it: VARCODE_GEMM=onednn turns every hand-written bf16 kernel off.
GemmBackend default_bf16_backend();

// An immutable linear layer. The weight tensor may borrow from a mapped checkpoint: it is packed
// once at construction into the chosen kernels' layout and not kept. On oneDNN, primitives are
// created per row count on first use and reused (thread-safe). Compute dtype follows the stored
// weight: f32 weights run in f32; bf16 weights run bf16 x bf16 -> f32 accumulation (see
// GemmBackend for which kernels).
class Linear {
 public:
  Linear();
  // weight [N, K] (f32 or bf16), bias [N] f32 or undefined. Asking for a hand-written backend on
  // a CPU without its instructions, or for the other dtype's (avx512bf16 for f32 weights,
  // avx512f32 for bf16), throws.
  Linear(Tensor weight, Tensor bias, GemmBackend backend = GemmBackend::automatic);
  // An int8 layer (gemm_int8.hpp): weight [N, K] i8 quantised per output channel with `scale`
  // [N] f32 (w ~= weight * scale), bias [N] f32 or undefined. Error where int8 does not run.
  static Linear int8(Tensor weight, Tensor scale, Tensor bias);
  // An int8 layer from a floating-point weight [N, K], quantised here (quantize_weights_int8).
  static Linear quantize_int8(const Tensor& weight, Tensor bias);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  int64_t in_features() const { return k_; }
  int64_t out_features() const { return n_; }
  DType dtype() const { return dtype_; }  // the weights' (i8 for int8 layers)
  GemmBackend backend() const;            // onednn, avx512bf16, avx512f32 or int8 (never automatic)
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

float gelu_tanh(float x);

// Vectorised f32 -> bf16 (round to nearest even) for finite activations.
void convert_f32_to_bf16(const float* x, uint16_t* y, int64_t n);

}  // namespace varcode::kernels::cpu
