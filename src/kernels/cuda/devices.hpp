// The CUDA backend's entry points for the library's device selection (src/backend/devices.cpp):
// host code only, no CUDA header, so that the rest of the library compiles without the toolkit.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "varcode/runtime.hpp"

namespace varcode::kernels::cuda {

int gpu_count();  // 0 without a driver or GPU
std::vector<GpuInfo> gpus();
// Empty when `gpu` can run the backend, else why not (driver, index, compute capability, cuBLASLt).
std::string unavailable_reason(int gpu);
// One backend per GPU, made on first use; throws Error with unavailable_reason() otherwise.
std::shared_ptr<const backend::Backend> backend_for_gpu(int gpu);
int64_t peak_memory(int gpu);  // bytes of device memory varcode held at most since the last reset
void reset_peak_memory(int gpu);

}  // namespace varcode::kernels::cuda
