#include "kernels/cpu/dnnl_context.hpp"

#include <cstdint>
#include <vector>

namespace varcode::kernels::cpu {

const dnnl::engine& dnnl_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& dnnl_stream() {
  thread_local dnnl::stream stream(dnnl_engine());
  return stream;
}

dnnl::memory thread_scratchpad(const dnnl::memory::desc& md) {
  thread_local std::vector<char> buffer;
  const size_t bytes = md.get_size();
  if (buffer.size() < bytes + 64) buffer.resize(bytes + 64);
  // 64-byte aligned, as oneDNN's own scratchpads are.
  const uintptr_t p = reinterpret_cast<uintptr_t>(buffer.data());
  return dnnl::memory(md, dnnl_engine(), reinterpret_cast<void*>((p + 63) & ~uintptr_t{63}));
}

dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

}  // namespace varcode::kernels::cpu
