// Matrix products on cuBLASLt. libcublasLt is opened with dlopen on first use (so a varcode binary
// runs on machines without the CUDA libraries; --device cuda then says which library is missing).
#pragma once
#include <cstdint>

namespace varcode::kernels::cuda {

enum class GemmType { f32, bf16 };
// gelu: GELU without a bias (cuBLASLt's GELU epilogues are the tanh form, as the CPU's gelu_tanh).
enum class GemmEpilogue { none, bias, gelu_bias, gelu };

// Row-major: D[m, n] = op(A) op(B) (+ bias[n]) (GELU, tanh form) (+ D when accumulate), with
// op(A) = A [m, k] (or A^T for a_transposed, A stored [k, m]) and op(B) = B^T for B stored [n, k]
// (b_transposed, the layout of a linear layer's weight) or B stored [k, n]. A and B are `type`
// (f32: computed in full f32, TF32 off); D is f32, bias f32 [n]. lda/ldb/ldd are row pitches in
// elements (0: dense). `batch` independent products with element strides between them.
struct GemmArgs {
  GemmType type = GemmType::f32;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  bool a_transposed = false;
  int64_t lda = 0;
  const void* b = nullptr;
  bool b_transposed = true;
  int64_t ldb = 0;
  float* d = nullptr;
  int64_t ldd = 0;
  const float* bias = nullptr;
  GemmEpilogue epilogue = GemmEpilogue::none;
  bool accumulate = false;
  float alpha = 1.0f;
  int batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_d = 0;
};

// Runs on the calling thread's stream (cuda_context.hpp). Throws Error on a shape cuBLASLt refuses.
// Where cuBLASLt has no fused algorithm for the epilogue (or VARCODE_GEMM_EPILOGUE=separate), the
// bias and GELU run as a kernel after the product, with the same result up to rounding.
void gemm(const GemmArgs& args);

// f32 -> bf16 (round to nearest even), n values, on the thread's stream.
void to_bf16(const float* x, int64_t n, uint16_t* y);

// Empty when libcublasLt can be opened, else why not (the library's name and dlerror()).
const char* cublaslt_unavailable_reason();

}  // namespace varcode::kernels::cuda
