// What every CUDA kernel file shares: error checks that become varcode::Error, the calling thread's
// stream, and scratch memory. Each host thread launches on a stream of its own (created on first use
// per device), so that concurrent requests on one Generator never serialise on the legacy stream;
// device memory is freed with cudaFree, which waits for the whole device, so a buffer never dies
// under a kernel of another thread's stream.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "varcode/error.hpp"

namespace varcode::kernels::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* what, const char* file, int line);

#define VARCODE_CUDA_CHECK(expr)                                                              \
  do {                                                                                        \
    const cudaError_t varcode_cuda_e_ = (expr);                                               \
    if (varcode_cuda_e_ != cudaSuccess)                                                       \
      ::varcode::kernels::cuda::throw_cuda_error(varcode_cuda_e_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration is reported now, naming the kernel (a string literal).
#define VARCODE_CUDA_LAUNCHED(kernel_name)                                                                           \
  do {                                                                                                               \
    const cudaError_t varcode_cuda_e_ = cudaPeekAtLastError();                                                       \
    if (varcode_cuda_e_ != cudaSuccess)                                                                              \
      ::varcode::kernels::cuda::throw_cuda_error(varcode_cuda_e_, "the launch of " kernel_name, __FILE__, __LINE__); \
  } while (0)

// Makes `device` current on this thread (cached: cheap to call before every operation).
void use_device(int device);
// The calling thread's stream on the current device.
cudaStream_t stream();

// Device memory counted against the backend's peak (`varcode bench` reports it). Throws Error
// naming the size and the free memory when the device is full.
void* device_alloc(size_t bytes, int device);
void device_free(void* p, size_t bytes, int device);
int64_t device_bytes_in_use(int device);
int64_t device_peak_bytes(int device);
void reset_device_peak(int device);

// Per-thread, per-device scratch that grows as needed and is reused by the next call on the same
// thread: kernels that need temporary space (bf16 copies of activations, im2col, cuBLASLt's
// workspace) take it from here. Slots 0..2 are free for kernels; the last slot is gemm()'s workspace.
constexpr int kScratchSlots = 4;
void* scratch(int slot, size_t bytes);

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace varcode::kernels::cuda
