// PLACEHOLDER: every method here throws until its kernels are written (this file is replaced).
#include "kernels/cuda/cuda_backend.hpp"

namespace varcode::kernels::cuda {

void CudaBackend::to_channel_major(const Tensor&, Tensor&) const {
  throw Error("cuda backend: to_channel_major is not written yet");
}

void CudaBackend::to_token_major(const Tensor&, Tensor&) const {
  throw Error("cuda backend: to_token_major is not written yet");
}

void CudaBackend::bicubic_resize(const Tensor&, Tensor&) const {
  throw Error("cuda backend: bicubic_resize is not written yet");
}

void CudaBackend::area_resize(const Tensor&, Tensor&) const {
  throw Error("cuda backend: area_resize is not written yet");
}

void CudaBackend::axpby(float, const float*, float, const float*, int64_t, float*) const {
  throw Error("cuda backend: axpby is not written yet");
}

void CudaBackend::blend(float*, const float*, const float*, int64_t, int64_t, int64_t) const {
  throw Error("cuda backend: blend is not written yet");
}

void CudaBackend::add_mul(const float*, int64_t, float, float, float*) const {
  throw Error("cuda backend: add_mul is not written yet");
}

}  // namespace varcode::kernels::cuda
