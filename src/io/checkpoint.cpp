#include "io/checkpoint.hpp"

#include <cstring>

#include "io/mapped_file.hpp"

namespace varcode::io {

const Tensor& Checkpoint::tensor(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(path + ": missing tensor '" + name + "'");
  return it->second;
}

Checkpoint load_checkpoint(const std::string& path) {
  const std::string head = read_file_prefix(path, 16);
  if (head.empty()) throw Error(path + ": empty file, not a checkpoint (.pth or .safetensors)");
  if (head.size() >= 4 && std::memcmp(head.data(), "PK\x03\x04", 4) == 0) return load_pth(path);
  // safetensors: 8-byte little-endian header length, then a JSON object.
  if (head.size() >= 9 && head[8] == '{') return load_safetensors(path);
  throw Error(path + ": not a checkpoint (neither a .pth zip archive nor a safetensors file)");
}

}  // namespace varcode::io
