// PLACEHOLDER: every method here throws until its kernels are written (this file is replaced).
#include "kernels/cuda/cuda_backend.hpp"

namespace varcode::kernels::cuda {

std::shared_ptr<const backend::CodebookWeights> CudaBackend::codebook_weights(const Tensor&) const {
  throw Error("cuda backend: codebook_weights is not written yet");
}

void CudaBackend::sample(const backend::SampleArgs&) const {
  throw Error("cuda backend: sample is not written yet");
}

void CudaBackend::embed_tokens(const backend::CodebookWeights&, const int64_t*, int64_t, float*) const {
  throw Error("cuda backend: embed_tokens is not written yet");
}

void CudaBackend::nearest_code(const backend::CodebookWeights&, const float*, int64_t, int64_t*) const {
  throw Error("cuda backend: nearest_code is not written yet");
}

}  // namespace varcode::kernels::cuda
