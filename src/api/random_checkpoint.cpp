#include "api/random_checkpoint.hpp"

#include <cmath>
#include <vector>

#include "kernels/cpu/gemm_int8.hpp"
#include "model/weights.hpp"

namespace varcode::model {

namespace {

// A stateless hash of (seed, tensor, index) -> uniform in [-1, 1): parallel and reproducible.
inline float hashed_uniform(uint64_t key, int64_t i) {
  uint64_t z = key + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 40) / static_cast<double>(1ull << 23) - 1.0);
}

class Builder {
 public:
  Builder(const std::string& path, uint32_t seed) : seed_(seed) {
    ck_.path = path;
    ck_.container = "random";
  }
  void add(const std::string& name, const Shape& shape, float scale, float offset = 0.0f, DType dt = DType::f32) {
    Tensor t = Tensor::empty(dt, shape);
    const uint64_t key = (static_cast<uint64_t>(seed_) << 32) ^ (++counter_ * 0xD1B54A32D192ED03ull);
    const int64_t n = t.numel();
    if (dt == DType::i8) {
      // As an int8 file holds it (convert --dtype int8): the bf16 random matrix (the same values
      // as matrix_dtype = bf16) quantised per output channel, one row at a time, so that the whole
      // matrix never exists in floating point. int8 and bf16 runs then differ by the quantisation.
      if (shape.size() != 2) throw Error("internal: random int8 tensors are matrices");
      const int64_t rows = shape[0], cols = shape[1];
      Tensor s = Tensor::empty(DType::f32, {rows});  // [out]
      int8_t* p = t.data<int8_t>();
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> row(static_cast<size_t>(cols));  // [in]
        for (int64_t c = 0; c < cols; ++c)
          row[static_cast<size_t>(c)] = bf16_to_f32(f32_to_bf16(offset + scale * hashed_uniform(key, r * cols + c)));
        kernels::cpu::quantize_weights_int8(row.data(), 1, cols, p + r * cols, s.data<float>() + r);
      }
      ck_.tensors[name + kInt8ScaleSuffix] = std::move(s);
    } else if (dt == DType::bf16) {
      uint16_t* p = t.data<uint16_t>();
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) p[i] = f32_to_bf16(offset + scale * hashed_uniform(key, i));
    } else {
      float* p = t.data<float>();
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) p[i] = offset + scale * hashed_uniform(key, i);
    }
    ck_.tensors[name] = std::move(t);
  }
  void add_i64(const std::string& name, const Shape& shape, const std::vector<int64_t>& values) {
    Tensor t = Tensor::empty(DType::i64, shape);
    std::copy(values.begin(), values.end(), t.data<int64_t>());
    ck_.tensors[name] = std::move(t);
  }
  io::Checkpoint take() { return std::move(ck_); }

 private:
  uint32_t seed_;
  uint64_t counter_ = 0;
  io::Checkpoint ck_;
};

}  // namespace

io::Checkpoint random_vqvae_checkpoint(const RandomVqvaeSpec& s) {
  Builder b("random VQ-VAE ch" + std::to_string(s.ch), s.seed);
  auto conv = [&](const std::string& p, int out, int in, int k) {
    b.add(p + "weight", {out, in, k, k}, 1.0f / std::sqrt(static_cast<float>(in * k * k)));
    b.add(p + "bias", {out}, 0.1f);
  };
  auto norm = [&](const std::string& p, int c) {
    b.add(p + "weight", {c}, 0.2f, 1.0f);
    b.add(p + "bias", {c}, 0.1f);
  };
  auto resnet = [&](const std::string& p, int in, int out) {
    norm(p + "norm1.", in);
    conv(p + "conv1.", out, in, 3);
    norm(p + "norm2.", out);
    conv(p + "conv2.", out, out, 3);
    if (in != out) conv(p + "nin_shortcut.", out, in, 1);
  };
  auto attn = [&](const std::string& p, int c) {
    norm(p + "norm.", c);
    conv(p + "qkv.", 3 * c, c, 1);
    conv(p + "proj_out.", c, c, 1);
  };
  auto mid = [&](const std::string& p, int c) {
    resnet(p + "block_1.", c, c);
    attn(p + "attn_1.", c);
    resnet(p + "block_2.", c, c);
  };
  const int n = static_cast<int>(s.ch_mult.size());
  b.add("quantize.embedding.weight", {s.vocab, s.cvae}, 1.0f);
  b.add("quantize.ema_vocab_hit_SV", {10, s.vocab}, 1.0f);
  for (int k = 0; k < 4; ++k) conv("quantize.quant_resi.qresi_ls." + std::to_string(k) + ".", s.cvae, s.cvae, 3);
  conv("post_quant_conv.", s.cvae, s.cvae, 3);
  int block_in = s.ch * s.ch_mult.back();
  conv("decoder.conv_in.", block_in, s.cvae, 3);
  mid("decoder.mid.", block_in);
  for (int level = n - 1; level >= 0; --level) {
    const std::string p = "decoder.up." + std::to_string(level) + ".";
    const int out = s.ch * s.ch_mult[static_cast<size_t>(level)];
    for (int j = 0; j <= s.num_res_blocks; ++j) {
      resnet(p + "block." + std::to_string(j) + ".", block_in, out);
      block_in = out;
      if (level == n - 1) attn(p + "attn." + std::to_string(j) + ".", block_in);
    }
    if (level != 0) conv(p + "upsample.conv.", block_in, block_in, 3);
  }
  norm("decoder.norm_out.", block_in);
  conv("decoder.conv_out.", 3, block_in, 3);
  if (s.encoder) {
    conv("encoder.conv_in.", s.ch, 3, 3);
    block_in = s.ch;
    for (int level = 0; level < n; ++level) {
      const std::string p = "encoder.down." + std::to_string(level) + ".";
      const int out = s.ch * s.ch_mult[static_cast<size_t>(level)];
      for (int j = 0; j < s.num_res_blocks; ++j) {
        resnet(p + "block." + std::to_string(j) + ".", block_in, out);
        block_in = out;
        if (level == n - 1) attn(p + "attn." + std::to_string(j) + ".", block_in);
      }
      if (level != n - 1) conv(p + "downsample.conv.", block_in, block_in, 3);
    }
    mid("encoder.mid.", block_in);
    norm("encoder.norm_out.", block_in);
    conv("encoder.conv_out.", s.cvae, block_in, 3);
    conv("quant_conv.", s.cvae, s.cvae, 3);
  }
  return b.take();
}

io::Checkpoint random_var_checkpoint(const RandomVarSpec& s) {
  Builder b("random:d" + std::to_string(s.depth), s.seed);
  const int64_t C = 64 * static_cast<int64_t>(s.depth), H = s.depth;
  int64_t L = 0;
  std::vector<int64_t> lvl;
  for (size_t si = 0; si < s.patch_nums.size(); ++si)
    for (int i = 0; i < s.patch_nums[si] * s.patch_nums[si]; ++i) {
      lvl.push_back(static_cast<int64_t>(si));
      ++L;
    }
  const int64_t SN = static_cast<int64_t>(s.patch_nums.size());
  const float init = static_cast<float>(std::sqrt(1.0 / static_cast<double>(C) / 3.0));
  const DType mdt = s.matrix_dtype;
  b.add("class_emb.weight", {s.num_classes + 1, C}, init);
  b.add("pos_start", {1, 1, C}, init);
  b.add("pos_1LC", {1, L, C}, init);
  b.add("lvl_embed.weight", {SN, C}, init);
  b.add_i64("lvl_1L", {1, L}, lvl);
  b.add("word_embed.weight", {C, s.cvae}, 0.02f);
  b.add("word_embed.bias", {C}, 0.0f);
  if (s.shared_adaln) {
    b.add("shared_ada_lin.1.weight", {6 * C, C}, 0.02f, 0.0f, mdt);
    b.add("shared_ada_lin.1.bias", {6 * C}, 0.02f);
  }
  for (int i = 0; i < s.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    if (s.shared_adaln) {
      b.add(p + "ada_gss", {1, 1, 6, C}, 0.02f);
    } else {
      b.add(p + "ada_lin.1.weight", {6 * C, C}, 0.02f, 0.0f, mdt);
      b.add(p + "ada_lin.1.bias", {6 * C}, 0.02f);
    }
    b.add(p + "attn.mat_qkv.weight", {3 * C, C}, 0.02f, 0.0f, mdt);
    b.add(p + "attn.q_bias", {C}, 0.02f);
    b.add(p + "attn.v_bias", {C}, 0.02f);
    b.add(p + "attn.zero_k_bias", {C}, 0.0f);
    b.add(p + "attn.scale_mul_1H11", {1, H, 1, 1}, 0.0f, static_cast<float>(std::log(4.0)));
    b.add(p + "attn.proj.weight", {C, C}, 0.02f, 0.0f, mdt);
    b.add(p + "attn.proj.bias", {C}, 0.0f);
    b.add(p + "ffn.fc1.weight", {4 * C, C}, 0.02f, 0.0f, mdt);
    b.add(p + "ffn.fc1.bias", {4 * C}, 0.0f);
    b.add(p + "ffn.fc2.weight", {C, 4 * C}, 0.02f, 0.0f, mdt);
    b.add(p + "ffn.fc2.bias", {C}, 0.0f);
  }
  b.add("head_nm.ada_lin.1.weight", {2 * C, C}, 0.02f, 0.0f, mdt);
  b.add("head_nm.ada_lin.1.bias", {2 * C}, 0.0f);
  b.add("head.weight", {s.vocab, C}, 0.1f);
  b.add("head.bias", {s.vocab}, 0.0f);
  return b.take();
}

RandomVarSpec parse_random_var(const std::string& name, const std::string& what) {
  const std::string prefix = "random:d";
  int depth = 0;
  try {
    size_t used = 0;
    if (name.rfind(prefix, 0) == 0) depth = std::stoi(name.substr(prefix.size()), &used);
    if (used != name.size() - prefix.size()) depth = 0;
  } catch (const std::exception&) {
    depth = 0;
  }
  if (depth < 1 || depth > 64)
    throw Error(what + ": '" + name + "' is not random:dNN with NN in 1..64 (e.g. random:d30)");
  RandomVarSpec s;
  s.depth = depth;
  if (depth == 36) {  // var_d36: 512 px, shared AdaLN
    s.patch_nums = {1, 2, 3, 4, 6, 9, 13, 18, 24, 32};
    s.shared_adaln = true;
  }
  return s;
}

}  // namespace varcode::model
