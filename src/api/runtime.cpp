#include "varcode/runtime.hpp"

#include <cpuid.h>
#include <omp.h>

#include <cstdlib>
#include <string>

#include "varcode/error.hpp"

namespace varcode {

void set_num_threads(int n) {
  if (n < 0) throw Error("--threads must be >= 0, got " + std::to_string(n));
  if (n == 0) {
    if (std::getenv("OMP_NUM_THREADS")) return;
    n = omp_get_num_procs();
  }
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

bool cpu_has_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u;
  bool avx512_bf16 = false;
  if (a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512_bf16 = (a >> 5) & 1u;
  return avx512_bf16 || amx_bf16;
}

}  // namespace varcode
