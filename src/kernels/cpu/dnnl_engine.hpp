// The process-wide oneDNN CPU engine and stream shared by every kernel.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

namespace varcode::kernels::cpu {

dnnl::engine& dnnl_engine();
// One in-order stream per thread (a stream is not safe to share between threads).
dnnl::stream& dnnl_stream();

}  // namespace varcode::kernels::cpu
