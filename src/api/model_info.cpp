#include "varcode/model_info.hpp"

#include <nlohmann/json.hpp>
#include <set>

#include "io/checkpoint.hpp"
#include "kernels/cpu/gemm_int8.hpp"
#include "model/config.hpp"
#include "api/random_checkpoint.hpp"
#include "model/validate.hpp"
#include "model/var_transformer.hpp"
#include "model/weights.hpp"

namespace varcode {

namespace {
std::string weights_dtype(const io::Checkpoint& ckpt) {
  std::string found;
  for (const auto& [name, t] : ckpt.tensors)
    if (t.dtype() == DType::i8) return "int8";  // convert --dtype int8: int8 linear weights, the rest as they were
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
  if (dtype == DType::i64) throw Error("convert: --dtype must be f32, f16, bf16 or int8");
  io::Checkpoint ckpt = open_checkpoint(in);
  model::validate_checkpoint(ckpt);
  const ModelInfo info = info_of(ckpt);
  std::map<std::string, Tensor> tensors;
  if (dtype == DType::i8) {
    if (info.kind != "var")
      throw Error("convert --dtype int8: " + in +
                  " is a VQ-VAE; int8 applies to VAR transformers (convert the VQ-VAE to bf16 or f32)");
    // Exactly the weights the model holds in int8 under --dtype int8, quantised as loading would
    // (from their f32 values): the file then loads without quantising and runs the same.
    const model::VarTransformer plan(ckpt, DType::i8, /*check_only=*/true);
    const std::vector<std::string>& int8_names = plan.weights_in_compute_dtype();
    const std::set<std::string> quantised(int8_names.begin(), int8_names.end());
    for (const auto& [name, t] : ckpt.tensors) {
      if (!quantised.count(name) || t.dtype() == DType::i8) {
        tensors[name] = t;  // already int8 (with its scales), or not a quantised layer: as it is
        continue;
      }
      const Tensor w = t.dtype() == DType::f32 ? t : t.to(DType::f32);  // [N, K]
      const int64_t n = w.dim(0), k = w.dim(1);
      Tensor q = Tensor::empty(DType::i8, {n, k});    // [N, K]
      Tensor scale = Tensor::empty(DType::f32, {n});  // [N]
      kernels::cpu::quantize_weights_int8(w.data<float>(), n, k, q.data<int8_t>(), scale.data<float>());
      tensors[name] = std::move(q);
      tensors[name + model::kInt8ScaleSuffix] = std::move(scale);
    }
  } else {
    for (const auto& [name, t] : ckpt.tensors) {
      if (t.dtype() == DType::i8) {
        // An int8 file to floating point: the dequantised weights, q * scale, without the scales.
        const Tensor& s = ckpt.tensor(name + model::kInt8ScaleSuffix);  // [N]
        const int64_t n = t.dim(0), k = t.dim(1);
        Tensor w = Tensor::empty(DType::f32, {n, k});  // [N, K]
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = 0; c < k; ++c)
            w.data<float>()[r * k + c] = static_cast<float>(t.data<int8_t>()[r * k + c]) * s.data<float>()[r];
        tensors[name] = dtype == DType::f32 ? w : w.to(dtype);
        continue;
      }
      const std::string scaled = name.ends_with(model::kInt8ScaleSuffix)
                                     ? name.substr(0, name.size() - std::string(model::kInt8ScaleSuffix).size())
                                     : "";
      if (!scaled.empty() && ckpt.has(scaled) && ckpt.tensor(scaled).dtype() == DType::i8) continue;
      tensors[name] = t.dtype() == DType::i64 || t.dtype() == dtype ? t : t.to(dtype);
    }
  }
  std::map<std::string, std::string> meta{{"format", "pt"}, {"varcode_config", model_info_json(info)}, {"source", in}};
  io::save_safetensors(out, tensors, meta);
}

}  // namespace varcode
