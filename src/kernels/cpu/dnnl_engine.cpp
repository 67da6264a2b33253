#include "kernels/cpu/dnnl_engine.hpp"

namespace varcode::kernels::cpu {

dnnl::engine& dnnl_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& dnnl_stream() {
  thread_local dnnl::stream strm(dnnl_engine());
  return strm;
}

}  // namespace varcode::kernels::cpu
