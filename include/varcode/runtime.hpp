// varcode: process-wide runtime settings and what the CPU can do.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

#include "varcode/tensor.hpp"

namespace varcode {

// The worker threads of the whole process (OpenMP and oneDNN kernels), shared by every request
// (Generator::generate / edit, VqvaeModel::decode_tokens / encode) on every thread: concurrent
// requests split them and never run more than n compute threads together. 0 = all cores, unless
// OMP_NUM_THREADS is set, which then wins. Also sets the calling thread's OpenMP team for work
// outside requests (loading).
void set_num_threads(int n);
int num_threads();
// At most n of those threads for any one request (0, the default: no cap; a request alone gets
// them all).
void set_threads_per_request(int n);

// True when this CPU runs bf16 dot products natively (AVX512-BF16 or AMX): --dtype auto then
// computes in bf16.
bool cpu_has_bf16();

// The kernels a compute dtype (f32, bf16 or i8) runs on this CPU, e.g.
// "gemm=avx512bf16,isa=avx512f", or "gemm=onednn,int8=avxvnni,isa=avx2" under int8 (gemm: the
// layers outside int8; int8: the int8 GEMM's kernel, int8_isa's name): CPUs on different paths
// (or VARCODE_GEMM=onednn) round differently, so images made on them differ in their last bits.
std::string kernel_path(DType compute);
// The same for a device: kernel_path(compute) on the CPU; on a GPU "cuda=cublaslt,gpu=NAME,sm=XY"
// (GPUs of other models round differently too).
std::string kernel_path(DType compute, Device device);

// ---- devices ---------------------------------------------------------------------------------

struct GpuInfo {
  int index = 0;
  std::string name;
  int64_t memory_bytes = 0;
  int major = 0, minor = 0;  // compute capability
};

// Whether this build has the CUDA backend (built with the CUDA toolkit, -DVARCODE_CUDA).
bool cuda_built();
// The CUDA GPUs this process sees (none without a CUDA build, driver or GPU).
std::vector<GpuInfo> cuda_gpus();
// Empty when GPU `gpu` can run varcode's CUDA backend, else why not (no CUDA build, no driver,
// no such GPU, compute capability below 8.0, libcublasLt missing).
std::string cuda_unavailable_reason(int gpu = 0);

// A device named as on the command line: "auto", "cpu", "cuda" or "cuda:I". `gpu` >= 0 picks
// the GPU for "cuda" and "auto" (--gpu). auto is the first usable CUDA GPU when there is one, else
// the CPU; `why` (optional) gets a line saying which was chosen and, for the CPU, why no GPU.
// Error for another name, or for cuda when no GPU can run it (the reason).
Device choose_device(const std::string& spec, int gpu = -1, std::string* why = nullptr);

// Device memory varcode held at most on a GPU since the last reset (bytes; 0 for the CPU).
int64_t device_peak_memory(Device d);
void reset_device_peak_memory(Device d);

}  // namespace varcode
