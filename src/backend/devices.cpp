#include "backend/devices.hpp"

#include "varcode/runtime.hpp"
#ifdef VARCODE_HAVE_CUDA
#include "kernels/cuda/devices.hpp"
#endif

namespace varcode {

#ifndef VARCODE_HAVE_CUDA
namespace {
const char* kNoCudaBuild =
    "this varcode was built without the CUDA backend (configure with the CUDA toolkit installed, or "
    "-DVARCODE_CUDA=ON to require it)";
}
#endif

bool cuda_built() {
#ifdef VARCODE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::vector<GpuInfo> cuda_gpus() {
#ifdef VARCODE_HAVE_CUDA
  return kernels::cuda::gpus();
#else
  return {};
#endif
}

std::string cuda_unavailable_reason(int gpu) {
#ifdef VARCODE_HAVE_CUDA
  return kernels::cuda::unavailable_reason(gpu);
#else
  (void)gpu;
  return kNoCudaBuild;
#endif
}

Device choose_device(const std::string& spec, int gpu, std::string* why) {
  if (spec == "cpu") {
    if (why) *why = "device: cpu";
    return {};
  }
  int index = gpu >= 0 ? gpu : 0;
  bool explicit_cuda = false;
  if (spec == "cuda") {
    explicit_cuda = true;
  } else if (spec.rfind("cuda:", 0) == 0) {
    const std::string n = spec.substr(5);
    if (n.empty() || n.size() > 4 || n.find_first_not_of("0123456789") != std::string::npos)
      throw Error("--device: '" + spec + "' is not a device (expected auto, cpu, cuda or cuda:I)");
    const int named = std::stoi(n);
    if (gpu >= 0 && gpu != named)
      throw Error("--device " + spec + " and --gpu " + std::to_string(gpu) + " name different GPUs");
    index = named;
    explicit_cuda = true;
  } else if (spec != "auto") {
    throw Error("--device: '" + spec + "' is not a device (expected auto, cpu, cuda or cuda:I)");
  }
  const std::string reason = cuda_unavailable_reason(index);
  if (explicit_cuda) {
    if (!reason.empty()) throw Error("--device " + spec + ": " + reason);
  } else if (!reason.empty()) {
    if (why) *why = "device: cpu (no CUDA GPU used: " + reason + ")";
    return {};
  }
  if (why) {
    std::string name;
    for (const GpuInfo& g : cuda_gpus())
      if (g.index == index) name = g.name;
    *why = "device: cuda:" + std::to_string(index) + (name.empty() ? "" : " (" + name + ")");
  }
  return {DeviceType::cuda, index};
}

std::string kernel_path(DType compute, Device device) {
  if (device.type != DeviceType::cuda) return kernel_path(compute);
  for (const GpuInfo& g : cuda_gpus())
    if (g.index == device.index)
      return "cuda=cublaslt,gpu=" + g.name + ",sm=" + std::to_string(g.major) + std::to_string(g.minor);
  return "cuda=cublaslt";
}

int64_t device_peak_memory(Device d) {
#ifdef VARCODE_HAVE_CUDA
  if (d.type == DeviceType::cuda) return kernels::cuda::peak_memory(d.index);
#endif
  (void)d;
  return 0;
}

void reset_device_peak_memory(Device d) {
#ifdef VARCODE_HAVE_CUDA
  if (d.type == DeviceType::cuda) kernels::cuda::reset_peak_memory(d.index);
#endif
  (void)d;
}

namespace backend {

std::shared_ptr<const Backend> backend_for(Device d) {
  switch (d.type) {
    case DeviceType::cpu:
      return cpu_backend();
    case DeviceType::cuda:
#ifdef VARCODE_HAVE_CUDA
      return kernels::cuda::backend_for_gpu(d.index);
#else
      throw Error(std::string("--device cuda: ") + kNoCudaBuild);
#endif
    case DeviceType::emulated:
      break;
  }
  throw Error("internal: no backend for device " + device_name(d));
}

}  // namespace backend
}  // namespace varcode
