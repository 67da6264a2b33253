// PLACEHOLDER: every method here throws until its kernels are written (this file is replaced).
#include "kernels/cuda/cuda_backend.hpp"

namespace varcode::kernels::cuda {

std::unique_ptr<backend::KvCache> CudaBackend::kv_cache(int64_t, int64_t, int64_t, DType) const {
  throw Error("cuda backend: kv_cache is not written yet");
}

void CudaBackend::attention(backend::KvCache&, int64_t, int64_t, const float*, int64_t, int64_t, const float*, std::span<const int>, float*) const {
  throw Error("cuda backend: attention is not written yet");
}

}  // namespace varcode::kernels::cuda
