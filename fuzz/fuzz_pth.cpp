// libFuzzer target: the .pth loader must turn any input into tensors or a varcode::Error, never
// a crash, hang or unbounded allocation.
#include <cstddef>
#include <cstdint>

#include "io/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    varcode::io::Checkpoint ck = varcode::io::load_pth_from_memory(data, size, "fuzz.pth");
    // Touch every byte so that a tensor pointing outside its buffer shows up under ASan.
    uint64_t sum = 0;
    for (const auto& [name, t] : ck.tensors) {
      const auto* p = static_cast<const uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
    }
    volatile uint64_t sink = sum;
    (void)sink;
  } catch (const varcode::Error&) {
  }
  return 0;
}
