// The one oneDNN CPU engine of the process, and a stream per calling thread, shared by every kernel
// that runs oneDNN primitives (VQ-VAE convolutions, attention and transformer GEMMs).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

namespace varcode::kernels::cpu {

// Created on first use; lives until exit.
const dnnl::engine& dnnl_engine();
// A stream on dnnl_engine() owned by the calling thread: oneDNN streams are not meant to be
// shared between threads that submit work concurrently.
dnnl::stream& dnnl_stream();

}  // namespace varcode::kernels::cpu
