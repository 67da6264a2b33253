#include "varcode/model_info.hpp"

#include <nlohmann/json.hpp>

#include "io/checkpoint.hpp"
#include "model/config.hpp"
#include "model/random_checkpoint.hpp"
#include "model/validate.hpp"

namespace varcode {

namespace {
std::string weights_dtype(const io::Checkpoint& ckpt) {
  std::string found;
  for (const auto& [name, t] : ckpt.tensors) {
    if (t.dtype() == DType::i64) continue;
    const std::string d = dtype_name(t.dtype());
    if (found.empty()) found = d;
    else if (found != d) return "mixed";
  }
  return found.empty() ? "none" : found;
}

// A file, or random weights at the official sizes: "random:dNN" (VAR) or "random" (VQ-VAE).
io::Checkpoint open_checkpoint(const std::string& path) {
  if (path == "random") return model::random_vqvae_checkpoint({});
  if (path.rfind("random:", 0) == 0) return model::random_var_checkpoint(model::parse_random_var(path, "model"));
  return io::load_checkpoint(path);
}

ModelInfo info_of(const io::Checkpoint& ckpt) {
  ModelInfo info;
  info.path = ckpt.path;
  info.container = ckpt.container;
  info.dtype = weights_dtype(ckpt);
  info.tensors = static_cast<int64_t>(ckpt.tensors.size());
  if (model::detect_kind(ckpt) == model::ModelKind::var) {
    const model::VarConfig c = model::infer_var_config(ckpt);
    info.kind = "var";
    info.params = c.params;
    info.depth = c.depth;
    info.width = c.width;
    info.heads = c.heads;
    info.vocab = c.vocab;
    info.num_classes = c.num_classes;
    info.latent_channels = c.cvae;
    info.patch_nums = c.patch_nums;
    info.shared_adaln = c.shared_adaln;
    info.latent_side = c.patch_nums.back();
  } else {
    const model::VaeConfig c = model::infer_vae_config(ckpt);
    info.kind = "vqvae";
    info.params = c.params;
    info.ch = c.ch;
    info.vocab = c.vocab;
    info.z_channels = c.z_channels;
    info.latent_channels = c.z_channels;
    info.ch_mult = c.ch_mult;
    info.num_res_blocks = c.num_res_blocks;
  }
  return info;
}
}  // namespace

ModelInfo inspect_model(const std::string& path) {
  io::Checkpoint ckpt = open_checkpoint(path);
  model::validate_checkpoint(ckpt);
  return info_of(ckpt);
}

std::string model_info_json(const ModelInfo& info) {
  nlohmann::ordered_json j;
  j["path"] = info.path;
  j["kind"] = info.kind;
  j["container"] = info.container;
  j["dtype"] = info.dtype;
  j["params"] = info.params;
  j["tensors"] = info.tensors;
  if (info.kind == "var") {
    j["depth"] = info.depth;
    j["width"] = info.width;
    j["heads"] = info.heads;
    j["vocab"] = info.vocab;
    j["num_classes"] = info.num_classes;
    j["latent_channels"] = info.latent_channels;
    j["patch_nums"] = info.patch_nums;
    j["shared_adaln"] = info.shared_adaln;
    j["latent_side"] = info.latent_side;
  } else {
    j["ch"] = info.ch;
    j["ch_mult"] = info.ch_mult;
    j["num_res_blocks"] = info.num_res_blocks;
    j["vocab"] = info.vocab;
    j["z_channels"] = info.z_channels;
  }
  return j.dump();
}

void convert_model(const std::string& in, const std::string& out, DType dtype) {
  if (dtype == DType::i64) throw Error("convert: --dtype must be f32, f16 or bf16");
  io::Checkpoint ckpt = open_checkpoint(in);
  model::validate_checkpoint(ckpt);
  const ModelInfo info = info_of(ckpt);
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, t] : ckpt.tensors) tensors[name] = t.dtype() == DType::i64 || t.dtype() == dtype ? t : t.to(dtype);
  std::map<std::string, std::string> meta{{"format", "pt"}, {"varcode_config", model_info_json(info)},
                                          {"source", in}};
  io::save_safetensors(out, tensors, meta);
}

}  // namespace varcode
