#include "varcode/runtime.hpp"

#include <cpuid.h>
#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>

#include "api/thread_budget.hpp"
#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "kernels/cpu/gemm_int8.hpp"
#include "varcode/error.hpp"

namespace varcode {

namespace {

struct Budget {
  std::mutex mutex;
  std::condition_variable freed;
  int total = 0;     // N; 0 until first needed or set
  int cap = 0;       // per-request cap, 0 = none
  int in_use = 0;    // threads leased
  int requests = 0;  // leases alive or waiting
};

Budget& budget() {
  static Budget b;
  return b;
}

int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return omp_get_num_procs();
}

// With the lock held.
int resolved_total(Budget& b) {
  if (b.total == 0) b.total = default_threads();
  return b.total;
}

int fair_share(Budget& b) {
  int share = std::max(1, resolved_total(b) / std::max(1, b.requests));
  if (b.cap > 0) share = std::min(share, b.cap);
  return share;
}

thread_local int lease_depth = 0;

}  // namespace

void set_num_threads(int n) {
  if (n < 0) throw Error("--threads must be >= 0, got " + std::to_string(n));
  Budget& b = budget();
  int total = 0;
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    b.total = n == 0 ? default_threads() : n;
    total = b.total;
  }
  b.freed.notify_all();
  omp_set_num_threads(total);
}

int num_threads() {
  Budget& b = budget();
  std::lock_guard<std::mutex> lock(b.mutex);
  return resolved_total(b);
}

void set_threads_per_request(int n) {
  if (n < 0) throw Error("threads per request must be >= 0, got " + std::to_string(n));
  Budget& b = budget();
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    b.cap = n;
  }
  b.freed.notify_all();
}

namespace detail {

ThreadLease::ThreadLease() {
  if (lease_depth++ > 0) {
    nested_ = true;
    return;
  }
  previous_ = omp_get_max_threads();
  Budget& b = budget();
  std::unique_lock<std::mutex> lock(b.mutex);
  ++b.requests;
  b.freed.wait(lock, [&] { return b.in_use < resolved_total(b); });
  threads_ = std::min(fair_share(b), b.total - b.in_use);
  b.in_use += threads_;
  lock.unlock();
  apply();
}

ThreadLease::~ThreadLease() {
  --lease_depth;
  if (nested_) return;
  Budget& b = budget();
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    b.in_use -= threads_;
    --b.requests;
  }
  b.freed.notify_all();
  omp_set_num_threads(previous_);
}

void ThreadLease::rebalance() {
  if (nested_) return;
  Budget& b = budget();
  bool gave_back = false;
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    const int share = fair_share(b);
    if (threads_ > share) {
      b.in_use -= threads_ - share;
      threads_ = share;
      gave_back = true;
    } else if (threads_ < share && b.in_use < b.total) {
      const int more = std::min(share - threads_, b.total - b.in_use);
      b.in_use += more;
      threads_ += more;
    }
  }
  if (gave_back) b.freed.notify_all();
  apply();
}

void ThreadLease::apply() const { omp_set_num_threads(threads_); }

}  // namespace detail

bool cpu_has_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u;
  bool avx512_bf16 = false;
  if (a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512_bf16 = (a >> 5) & 1u;
  return avx512_bf16 || amx_bf16;
}

std::string kernel_path(DType compute) {
  const bool bf16 = compute == DType::bf16;
  // The GEMMs decide most of the rounding; the element-wise kernels are compiled for avx512f,
  // avx2 and a baseline (target_clones), picked by the CPU.
  const std::string isa = __builtin_cpu_supports("avx512f") ? "avx512f"
                          : __builtin_cpu_supports("avx2")  ? "avx2"
                                                            : "baseline";
  // f32: Linear's own choice (gemm.cpp default_backend) for f32 weights.
  const char* env = std::getenv("VARCODE_GEMM");
  const bool onednn = env && std::string(env) == "onednn";
  const kernels::cpu::GemmBackend gemm = bf16 ? kernels::cpu::default_bf16_backend()
                                         : !onednn && kernels::cpu::F32Gemm::supported()
                                             ? kernels::cpu::GemmBackend::avx512f32
                                             : kernels::cpu::GemmBackend::onednn;
  const char* g = gemm == kernels::cpu::GemmBackend::avx512bf16  ? "avx512bf16"
                  : gemm == kernels::cpu::GemmBackend::avx512f32 ? "avx512f32"
                                                                 : "onednn";
  // int8: the int8 GEMM's own kernel beside it (the head and the others stay f32).
  const std::string int8 =
      compute == DType::i8 ? std::string(",int8=") + kernels::cpu::int8_isa_name(kernels::cpu::int8_isa()) : "";
  return std::string("gemm=") + g + int8 + ",isa=" + isa;
}

}  // namespace varcode
