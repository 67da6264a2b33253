// PLACEHOLDER: every method here throws until its kernels are written (this file is replaced).
#include "kernels/cuda/cuda_backend.hpp"

namespace varcode::kernels::cuda {

std::shared_ptr<const backend::LinearWeights> CudaBackend::linear_weights(const Tensor&, const Tensor&, DType) const {
  throw Error("cuda backend: linear_weights is not written yet");
}

std::shared_ptr<const backend::LinearWeights> CudaBackend::int8_linear_weights(const Tensor&, const Tensor&, const Tensor&, DType) const {
  throw Error("cuda backend: int8_linear_weights is not written yet");
}

void CudaBackend::linear(const backend::LinearWeights&, const float*, int64_t, float*, backend::Epilogue) const {
  throw Error("cuda backend: linear is not written yet");
}

void CudaBackend::adaln_modulate(const float*, int64_t, int64_t, int64_t, const float*, const float*, int64_t, float*) const {
  throw Error("cuda backend: adaln_modulate is not written yet");
}

void CudaBackend::gated_residual_add(float*, const float*, int64_t, int64_t, int64_t, const float*, int64_t) const {
  throw Error("cuda backend: gated_residual_add is not written yet");
}

void CudaBackend::silu(const float*, int64_t, float*) const {
  throw Error("cuda backend: silu is not written yet");
}

void CudaBackend::add_rows(const float*, int64_t, int64_t, const float*, float*) const {
  throw Error("cuda backend: add_rows is not written yet");
}

void CudaBackend::gather_rows(const float*, int64_t, const int32_t*, int64_t, float*) const {
  throw Error("cuda backend: gather_rows is not written yet");
}

void CudaBackend::cfg(const float*, int64_t, int64_t, int64_t, const backend::ImageDraw*, double, float*) const {
  throw Error("cuda backend: cfg is not written yet");
}

}  // namespace varcode::kernels::cuda
