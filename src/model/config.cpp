#include "model/config.hpp"

#include <numeric>

namespace varcode::model {

namespace {

const Shape& shape_of(const io::Checkpoint& ckpt, const std::string& name, size_t ndim) {
  const Tensor& t = ckpt.tensor(name);
  if (t.shape().size() != ndim)
    throw Error(ckpt.path + ": tensor '" + name + "' has shape " + shape_str(t.shape()) + ", expected " +
                std::to_string(ndim) + " dimensions");
  return t.shape();
}

int count_prefixed(const io::Checkpoint& ckpt, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  while (ckpt.has(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

bool is_buffer(const std::string& name) {
  auto ends_with = [&](const char* s) {
    std::string suf(s);
    return name.size() >= suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return name == "lvl_1L" || name == "attn_bias_for_masking" || ends_with("ema_vocab_hit_SV") ||
         ends_with("zero_k_bias");
}

}  // namespace

int VarConfig::total_tokens() const { return scale_end(num_scales() - 1); }

int VarConfig::scale_begin(int si) const {
  int b = 0;
  for (int i = 0; i < si; ++i) b += patch_nums[static_cast<size_t>(i)] * patch_nums[static_cast<size_t>(i)];
  return b;
}

int VarConfig::scale_end(int si) const {
  return scale_begin(si) + patch_nums[static_cast<size_t>(si)] * patch_nums[static_cast<size_t>(si)];
}

std::vector<int> schedule_for_tokens(int total_tokens) {
  if (total_tokens == 680) return {1, 2, 3, 4, 5, 6, 8, 10, 13, 16};
  if (total_tokens == 2240) return {1, 2, 3, 4, 6, 9, 13, 18, 24, 32};
  throw Error("a token count of " + std::to_string(total_tokens) +
              " matches no known scale schedule (680 for 256 px, 2240 for 512 px)");
}

ModelKind detect_kind(const io::Checkpoint& ckpt) {
  if (ckpt.has("word_embed.weight") && ckpt.has("pos_1LC")) return ModelKind::var;
  if (ckpt.has("quantize.embedding.weight") && ckpt.has("decoder.conv_out.weight")) return ModelKind::vqvae;
  throw Error(ckpt.path +
              ": neither a VAR transformer (no 'word_embed.weight') nor a VQ-VAE "
              "(no 'quantize.embedding.weight')");
}

int64_t count_params(const io::Checkpoint& ckpt) {
  int64_t n = 0;
  for (const auto& [name, t] : ckpt.tensors) {
    // An int8 weight's scales (`<weight>.scale`) are part of that weight, not parameters.
    const std::string scaled = name.size() > 6 && name.ends_with(".scale") ? name.substr(0, name.size() - 6) : "";
    if (!scaled.empty() && ckpt.has(scaled) && ckpt.tensor(scaled).dtype() == DType::i8) continue;
    if (!is_buffer(name) && t.dtype() != DType::i64) n += t.numel();
  }
  return n;
}

VarConfig infer_var_config(const io::Checkpoint& ckpt) {
  if (detect_kind(ckpt) != ModelKind::var) throw Error(ckpt.path + ": is a VQ-VAE, expected a VAR transformer");
  VarConfig c;
  const Shape& we = shape_of(ckpt, "word_embed.weight", 2);
  c.width = static_cast<int>(we[0]);
  c.cvae = static_cast<int>(we[1]);
  if (c.width % 64 != 0) throw Error(ckpt.path + ": width " + std::to_string(c.width) + " is not a multiple of 64");
  c.heads = c.width / 64;
  c.vocab = static_cast<int>(shape_of(ckpt, "head.weight", 2)[0]);
  c.num_classes = static_cast<int>(shape_of(ckpt, "class_emb.weight", 2)[0]) - 1;
  c.depth = count_prefixed(ckpt, "blocks.", ".attn.mat_qkv.weight");
  if (c.depth == 0) throw Error(ckpt.path + ": no transformer blocks ('blocks.0.attn.mat_qkv.weight' missing)");
  c.shared_adaln = ckpt.has("shared_ada_lin.1.weight");
  const Shape& pos = shape_of(ckpt, "pos_1LC", 3);
  const int L = static_cast<int>(pos[1]);
  // lvl_1L (a buffer every official file carries) names the scale of each position, which gives
  // the schedule of any model; without it, fall back to the two official schedules.
  if (ckpt.has("lvl_1L") && ckpt.tensor("lvl_1L").dtype() == DType::i64 && ckpt.tensor("lvl_1L").numel() == L) {
    const int64_t* lvl = ckpt.tensor("lvl_1L").data<int64_t>();
    std::vector<int> counts;
    for (int i = 0; i < L; ++i) {
      int64_t s = lvl[i];
      if (s < 0 || s > 64 || s < static_cast<int64_t>(counts.size()) - 1)
        throw Error(ckpt.path + ": buffer 'lvl_1L' is not a non-decreasing list of scale indices");
      if (s == static_cast<int64_t>(counts.size())) counts.push_back(0);
      if (s != static_cast<int64_t>(counts.size()) - 1) throw Error(ckpt.path + ": buffer 'lvl_1L' skips a scale");
      ++counts.back();
    }
    for (int n : counts) {
      int pn = 0;
      while (pn * pn < n) ++pn;
      if (pn * pn != n)
        throw Error(ckpt.path + ": buffer 'lvl_1L' gives a scale of " + std::to_string(n) + " tokens, not a square");
      c.patch_nums.push_back(pn);
    }
  } else {
    c.patch_nums = schedule_for_tokens(L);
  }
  const int sn = static_cast<int>(shape_of(ckpt, "lvl_embed.weight", 2)[0]);
  if (sn != c.num_scales())
    throw Error(ckpt.path + ": 'lvl_embed.weight' has " + std::to_string(sn) + " rows but the schedule has " +
                std::to_string(c.num_scales()) + " scales");
  c.params = count_params(ckpt);
  return c;
}

VaeConfig infer_vae_config(const io::Checkpoint& ckpt) {
  if (detect_kind(ckpt) != ModelKind::vqvae) throw Error(ckpt.path + ": is a VAR transformer, expected a VQ-VAE");
  VaeConfig c;
  const Shape& emb = shape_of(ckpt, "quantize.embedding.weight", 2);
  c.vocab = static_cast<int>(emb[0]);
  c.z_channels = static_cast<int>(emb[1]);
  c.ch = static_cast<int>(shape_of(ckpt, "decoder.conv_out.weight", 4)[1]);
  const int levels = count_prefixed(ckpt, "decoder.up.", ".block.0.conv1.weight");
  if (levels == 0) throw Error(ckpt.path + ": no decoder levels ('decoder.up.0.block.0.conv1.weight' missing)");
  for (int l = 0; l < levels; ++l) {
    const Shape& w = shape_of(ckpt, "decoder.up." + std::to_string(l) + ".block.0.conv1.weight", 4);
    if (w[0] % c.ch != 0)
      throw Error(ckpt.path + ": decoder level " + std::to_string(l) + " has " + std::to_string(w[0]) +
                  " channels, not a multiple of ch = " + std::to_string(c.ch));
    c.ch_mult.push_back(static_cast<int>(w[0] / c.ch));
  }
  c.has_encoder = ckpt.has("encoder.conv_in.weight");
  if (c.has_encoder) {
    c.num_res_blocks = count_prefixed(ckpt, "encoder.down.0.block.", ".conv1.weight");
    c.in_channels = static_cast<int>(shape_of(ckpt, "encoder.conv_in.weight", 4)[1]);
  } else {
    c.num_res_blocks = count_prefixed(ckpt, "decoder.up.0.block.", ".conv1.weight") - 1;
  }
  c.params = count_params(ckpt);
  return c;
}

}  // namespace varcode::model
