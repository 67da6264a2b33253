// varcode: process-wide runtime settings and what the CPU can do.
#pragma once

namespace varcode {

// Worker threads for every kernel (OpenMP and oneDNN). 0 = all cores, unless OMP_NUM_THREADS is
// set, which then wins.
void set_num_threads(int n);
int num_threads();

// True when this CPU runs bf16 dot products natively (AVX512-BF16 or AMX): --dtype auto then
// computes in bf16.
bool cpu_has_bf16();

}  // namespace varcode
