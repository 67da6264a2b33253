// varcode: process-wide runtime settings and what the CPU can do.
#pragma once
#include <string>

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

}  // namespace varcode
