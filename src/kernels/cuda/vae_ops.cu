// PLACEHOLDER: every method here throws until its kernels are written (this file is replaced).
#include "kernels/cuda/cuda_backend.hpp"

namespace varcode::kernels::cuda {

std::shared_ptr<const backend::ConvWeights> CudaBackend::conv_weights(const Tensor&, const Tensor&, backend::ConvGeometry) const {
  throw Error("cuda backend: conv_weights is not written yet");
}

void CudaBackend::conv2d(const backend::ConvWeights&, const Tensor&, Tensor&, bool) const {
  throw Error("cuda backend: conv2d is not written yet");
}

void CudaBackend::conv2d_nhwc(const backend::ConvWeights&, const Tensor&, Tensor&, bool) const {
  throw Error("cuda backend: conv2d_nhwc is not written yet");
}

void CudaBackend::group_norm_nhwc(const Tensor&, const Tensor&, const Tensor&, int, float, bool, Tensor&) const {
  throw Error("cuda backend: group_norm_nhwc is not written yet");
}

void CudaBackend::upsample_nearest2x_nhwc(const Tensor&, Tensor&) const {
  throw Error("cuda backend: upsample_nearest2x_nhwc is not written yet");
}

void CudaBackend::vae_attention_nhwc(const Tensor&, Tensor&) const {
  throw Error("cuda backend: vae_attention_nhwc is not written yet");
}

void CudaBackend::nchw_to_nhwc(const Tensor&, Tensor&) const {
  throw Error("cuda backend: nchw_to_nhwc is not written yet");
}

void CudaBackend::nhwc_to_nchw(const Tensor&, Tensor&, float, float) const {
  throw Error("cuda backend: nhwc_to_nchw is not written yet");
}

bool CudaBackend::bf16_activations() const {
  throw Error("cuda backend: bf16_activations is not written yet");
}

}  // namespace varcode::kernels::cuda
