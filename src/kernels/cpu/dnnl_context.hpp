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

// Every shared primitive is created with scratchpad_mode::user and runs with this: the calling
// thread's own scratch memory for `md` (grown as needed, kept between calls). With the library's
// default scratchpad (this oneDNN is built without ONEDNN_ENABLE_CONCURRENT_EXEC), one primitive
// executed from two threads at once wrote into one scratchpad: concurrent requests on one
// Generator got garbage convolutions (tests/model/thread_safety_test.cpp).
dnnl::memory thread_scratchpad(const dnnl::memory::desc& md);
// An attr with scratchpad_mode::user, for primitives used through thread_scratchpad.
dnnl::primitive_attr user_scratchpad_attr();

}  // namespace varcode::kernels::cpu
