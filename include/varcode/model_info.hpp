// varcode: what a model file is, inferred from its tensors alone, and format conversion.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

namespace varcode {

struct ModelInfo {
  std::string path;
  std::string kind;       // "var" or "vqvae"
  std::string container;  // "pth" or "safetensors"
  std::string dtype;      // dtype of the floating-point weights ("f32", "bf16", "f16", "int8" or "mixed")
  int64_t params = 0;
  int64_t tensors = 0;
  // VAR
  int depth = 0, width = 0, heads = 0, vocab = 0, num_classes = 0, latent_channels = 0;
  std::vector<int> patch_nums;
  bool shared_adaln = false;
  int latent_side = 0;  // the last scale's side; pixels = latent_side x the VAE's downsampling
  // VQ-VAE
  int ch = 0, z_channels = 0;
  std::vector<int> ch_mult;
  int num_res_blocks = 0;
};

// Opens, recognises and fully validates the file (every tensor checked against the inferred
// architecture); Error naming the file and the problem otherwise.
ModelInfo inspect_model(const std::string& path);
// JSON object text for `inspect --json`.
std::string model_info_json(const ModelInfo& info);

// Writes the same model as safetensors, floating-point tensors in `dtype` (f32, f16 or bf16;
// int64 buffers stay int64), the inferred configuration in the metadata. i8 (VAR models only):
// the linear weights that --dtype int8 runs in int8 become `<name>` I8 [out, in] quantised per
// output channel plus `<name>.scale` F32 [out] (w ~= q * scale); every other tensor is kept as
// it is. An int8 file converted to a floating-point dtype is dequantised.
void convert_model(const std::string& in, const std::string& out, DType dtype);

}  // namespace varcode
