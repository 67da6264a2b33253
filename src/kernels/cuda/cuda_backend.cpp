#include "kernels/cuda/cuda_backend.hpp"

#include <dlfcn.h>

#include <map>
#include <mutex>

#include "kernels/cuda/cuda_context.hpp"
#include "kernels/cuda/devices.hpp"
#include "kernels/cuda/gemm.hpp"

namespace varcode::kernels::cuda {

namespace {

// Frees its device memory when the last tensor on it goes.
struct DeviceAllocation {
  void* p = nullptr;
  size_t bytes = 0;
  int device = 0;
  DeviceAllocation(size_t b, int d) : p(device_alloc(b, d)), bytes(b), device(d) {}
  DeviceAllocation(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(const DeviceAllocation&) = delete;
  ~DeviceAllocation() { device_free(p, bytes, device); }
};

}  // namespace

std::string unavailable_reason(int gpu) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    // cudart reports a missing driver as an old one: tell the two apart.
    if (void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
      dlclose(driver);
      return std::string("the NVIDIA driver cannot run this build's CUDA ") + std::to_string(CUDART_VERSION / 1000) +
             " code (" + cudaGetErrorString(e) + "; a newer driver is needed)";
    }
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice)
      return "no NVIDIA driver on this machine (libcuda.so.1 not found)";
    return std::string("no usable CUDA driver or GPU (") + cudaGetErrorString(e) + ")";
  }
  if (count == 0) return "no CUDA GPU on this machine";
  if (gpu < 0 || gpu >= count)
    return "GPU " + std::to_string(gpu) + " does not exist (this machine has " + std::to_string(count) + " CUDA GPU" +
           (count == 1 ? "" : "s") + ", numbered from 0)";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, gpu) != cudaSuccess) return "cannot query GPU " + std::to_string(gpu);
  if (prop.major < 8)
    return std::string("GPU ") + std::to_string(gpu) + " (" + prop.name + ") has compute capability " +
           std::to_string(prop.major) + "." + std::to_string(prop.minor) +
           "; varcode's CUDA backend needs 8.0 or newer";
  if (const char* why = cublaslt_unavailable_reason(); why && *why) return why;
  return {};
}

int gpu_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::vector<GpuInfo> gpus() {
  std::vector<GpuInfo> out;
  const int n = gpu_count();
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    out.push_back({i, prop.name, static_cast<int64_t>(prop.totalGlobalMem), prop.major, prop.minor});
  }
  return out;
}

std::shared_ptr<const backend::Backend> backend_for_gpu(int gpu) {
  static std::mutex mutex;
  static std::map<int, std::shared_ptr<const backend::Backend>> backends;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = backends.find(gpu);
  if (it != backends.end()) return it->second;
  if (const std::string why = unavailable_reason(gpu); !why.empty()) throw Error("--device cuda: " + why);
  auto be = std::make_shared<const CudaBackend>(gpu);
  backends.emplace(gpu, be);
  return be;
}

int64_t peak_memory(int gpu) { return device_peak_bytes(gpu); }
void reset_peak_memory(int gpu) { reset_device_peak(gpu); }

CudaBackend::CudaBackend(int gpu) : gpu_(gpu) {
  cudaDeviceProp prop{};
  VARCODE_CUDA_CHECK(cudaGetDeviceProperties(&prop, gpu));
  gpu_name_ = prop.name;
  enter();
}

void CudaBackend::enter() const { use_device(gpu_); }

Tensor CudaBackend::alloc(DType dtype, Shape shape) const {
  const int64_t n = shape_numel(shape);
  auto a = std::make_shared<DeviceAllocation>(static_cast<size_t>(n) * dtype_size(dtype), gpu_);
  return Tensor::borrow(dtype, std::move(shape), a->p, a).on(device());
}

Tensor CudaBackend::zeros(DType dtype, Shape shape) const {
  Tensor t = alloc(dtype, std::move(shape));
  VARCODE_CUDA_CHECK(cudaMemsetAsync(t.raw(), 0, t.nbytes(), stream()));
  return t;
}

Tensor CudaBackend::to_device(const Tensor& host) const {
  if (host.device() != Device{})
    throw Error("internal: to_device of a tensor on " + device_name(host.device()) + ", expected host memory");
  Tensor t = alloc(host.dtype(), host.shape());
  if (host.nbytes()) {
    VARCODE_CUDA_CHECK(cudaMemcpyAsync(t.raw(), host.raw(), host.nbytes(), cudaMemcpyHostToDevice, stream()));
    // The host buffer may go as soon as this returns (a mapped file's pages, a temporary).
    VARCODE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  }
  return t;
}

Tensor CudaBackend::to_host(const Tensor& t) const {
  if (t.device() != device())
    throw Error("internal: to_host on " + device_name(device()) + " of a tensor on " + device_name(t.device()));
  enter();
  Tensor h = Tensor::empty(t.dtype(), t.shape());
  if (t.nbytes()) VARCODE_CUDA_CHECK(cudaMemcpyAsync(h.raw(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost, stream()));
  VARCODE_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return h;
}

void CudaBackend::copy_2d(const void* src, int64_t src_pitch, void* dst, int64_t dst_pitch, int64_t row_bytes,
                          int64_t rows) const {
  if (rows <= 0 || row_bytes <= 0) return;
  enter();
  VARCODE_CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_pitch), src, static_cast<size_t>(src_pitch),
                                       static_cast<size_t>(row_bytes), static_cast<size_t>(rows),
                                       cudaMemcpyDeviceToDevice, stream()));
}

void CudaBackend::synchronize() const {
  enter();
  VARCODE_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

}  // namespace varcode::kernels::cuda
