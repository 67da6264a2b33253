#include "kernels/cuda/cuda_context.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace varcode::kernels::cuda {

void throw_cuda_error(cudaError_t e, const char* what, const char* file, int line) {
  const char* f = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') f = p + 1;
  throw Error(std::string("CUDA error: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ") in " + what +
              " at " + f + ":" + std::to_string(line));
}

namespace {

constexpr int kMaxDevices = 64;

struct MemoryCounter {
  std::atomic<int64_t> in_use{0}, peak{0};
};
std::array<MemoryCounter, kMaxDevices>& counters() {
  static std::array<MemoryCounter, kMaxDevices> c;
  return c;
}

struct ThreadState {
  int current = -1;
  std::unordered_map<int, cudaStream_t> streams;  // device -> stream (never destroyed: a thread's
                                                  // last tensors may outlive it)
  struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
  };
  std::unordered_map<int, std::array<Scratch, kScratchSlots>> scratch;
  ~ThreadState() {
    for (auto& [dev, slots] : scratch)
      for (auto& s : slots)
        if (s.p) {
          cudaSetDevice(dev);
          cudaFree(s.p);
          counters()[dev].in_use -= static_cast<int64_t>(s.bytes);
        }
  }
};
ThreadState& thread_state() {
  thread_local ThreadState s;
  return s;
}

void check_device(int device) {
  if (device < 0 || device >= kMaxDevices) throw Error("CUDA device index " + std::to_string(device) + " out of range");
}

}  // namespace

void use_device(int device) {
  ThreadState& s = thread_state();
  if (s.current == device) return;
  check_device(device);
  VARCODE_CUDA_CHECK(cudaSetDevice(device));
  s.current = device;
}

cudaStream_t stream() {
  ThreadState& s = thread_state();
  if (s.current < 0) throw Error("internal: CUDA stream requested before a device was chosen");
  auto it = s.streams.find(s.current);
  if (it != s.streams.end()) return it->second;
  cudaStream_t st = nullptr;
  VARCODE_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  s.streams.emplace(s.current, st);
  return st;
}

void* device_alloc(size_t bytes, int device) {
  use_device(device);
  void* p = nullptr;
  const size_t n = bytes ? bytes : 1;
  const cudaError_t e = cudaMalloc(&p, n);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error("out of memory on GPU cuda:" + std::to_string(device) + ": " + std::to_string(n >> 20) +
                " MiB requested, " + std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) +
                " MiB (a smaller --batch needs less)");
  }
  VARCODE_CUDA_CHECK(e);
  MemoryCounter& c = counters()[device];
  const int64_t now = c.in_use += static_cast<int64_t>(n);
  int64_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void device_free(void* p, size_t bytes, int device) {
  if (!p) return;
  use_device(device);
  cudaFree(p);  // waits for the device: no kernel of any stream still uses it
  counters()[device].in_use -= static_cast<int64_t>(bytes ? bytes : 1);
}

int64_t device_bytes_in_use(int device) {
  check_device(device);
  return counters()[device].in_use.load();
}
int64_t device_peak_bytes(int device) {
  check_device(device);
  return counters()[device].peak.load();
}
void reset_device_peak(int device) {
  check_device(device);
  counters()[device].peak = counters()[device].in_use.load();
}

void* scratch(int slot, size_t bytes) {
  ThreadState& s = thread_state();
  if (slot < 0 || slot >= kScratchSlots) throw Error("internal: scratch slot out of range");
  if (s.current < 0) throw Error("internal: CUDA scratch requested before a device was chosen");
  ThreadState::Scratch& sc = s.scratch[s.current][slot];
  if (sc.bytes >= bytes && sc.p) return sc.p;
  const size_t grown = std::max(bytes, sc.bytes + sc.bytes / 2);
  if (sc.p) device_free(sc.p, sc.bytes, s.current);
  sc.p = nullptr;
  sc.bytes = 0;
  sc.p = device_alloc(grown, s.current);
  sc.bytes = grown;
  return sc.p;
}

}  // namespace varcode::kernels::cuda
