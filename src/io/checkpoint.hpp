// Checkpoint containers: PyTorch .pth (zip + pickle) and safetensors, read into one tensor table.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "io/mapped_file.hpp"
#include "varcode/tensor.hpp"

namespace varcode::io {

// The tensors of one model file, by name. Where the file stores a tensor contiguously, in the
// right byte order and suitably aligned, the Tensor points into a read-only memory map of the
// file (no copy); otherwise (views with strides, compressed entries) it owns a contiguous copy.
struct Checkpoint {
  std::string path;
  std::string container;  // "pth" or "safetensors"
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // safetensors "__metadata__" (empty for .pth)
  std::shared_ptr<const MappedFile> mapping;    // the file, when read from disk

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  // Error naming the file and the tensor when absent.
  const Tensor& tensor(const std::string& name) const;
};

// Dispatches on the file's first bytes (zip magic -> .pth, else safetensors header); a file that
// is neither is an Error naming the path.
Checkpoint load_checkpoint(const std::string& path);
// torch.save zip archives (spec §6), read with a restricted pickle reader that executes nothing.
// The state dict may be the pickled object itself or nested under 'state_dict', 'model',
// 'module', 'ema', 'trainer' (...); a leading 'module.' is stripped from names. DoubleStorage
// tensors are converted to f32. Stored entries are borrowed from the file mapping.
Checkpoint load_pth(const std::string& path);
Checkpoint load_safetensors(const std::string& path);

// Parses a .pth held in memory (for the fuzzer and tests); `name` is used in error messages.
// Tensors copy out of `data`.
Checkpoint load_pth_from_memory(const void* data, size_t size, const std::string& name);

// Writes tensors (any dtype) and string metadata; atomic (temporary file renamed into place).
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata);

}  // namespace varcode::io
