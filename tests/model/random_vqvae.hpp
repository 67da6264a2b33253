// An in-memory VQ-VAE checkpoint with random weights, laid out as the official state_dict, for
// unit tests and benchmarks of any size (ch, ch_mult, res blocks, V, Cvae).
#pragma once
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"

namespace varcode::testing {

struct RandomVqvaeSpec {
  int ch = 32;
  std::vector<int> ch_mult{1, 1, 2, 2, 4};
  int num_res_blocks = 2;  // encoder; the decoder has one more
  int vocab = 4096;
  int cvae = 32;
  bool encoder = true;
  uint32_t seed = 1;
};

class RandomVqvaeBuilder {
 public:
  explicit RandomVqvaeBuilder(const RandomVqvaeSpec& s) : s_(s), rng_(s.seed) {}

  io::Checkpoint build() {
    ck_.path = "<random vqvae>";
    ck_.container = "pth";
    const int n = static_cast<int>(s_.ch_mult.size());
    add("quantize.embedding.weight", {s_.vocab, s_.cvae}, 1.0f);
    add("quantize.ema_vocab_hit_SV", {10, s_.vocab}, 1.0f);
    for (int k = 0; k < 4; ++k) conv("quantize.quant_resi.qresi_ls." + std::to_string(k) + ".", s_.cvae, s_.cvae, 3);
    conv("post_quant_conv.", s_.cvae, s_.cvae, 3);
    int block_in = s_.ch * s_.ch_mult.back();
    conv("decoder.conv_in.", block_in, s_.cvae, 3);
    mid("decoder.mid.", block_in);
    for (int level = n - 1; level >= 0; --level) {
      const std::string p = "decoder.up." + std::to_string(level) + ".";
      const int out = s_.ch * s_.ch_mult[static_cast<size_t>(level)];
      for (int j = 0; j <= s_.num_res_blocks; ++j) {
        resnet(p + "block." + std::to_string(j) + ".", block_in, out);
        block_in = out;
        if (level == n - 1) attn(p + "attn." + std::to_string(j) + ".", block_in);
      }
      if (level != 0) conv(p + "upsample.conv.", block_in, block_in, 3);
    }
    norm("decoder.norm_out.", block_in);
    conv("decoder.conv_out.", 3, block_in, 3);
    if (s_.encoder) {
      conv("encoder.conv_in.", s_.ch, 3, 3);
      block_in = s_.ch;
      for (int level = 0; level < n; ++level) {
        const std::string p = "encoder.down." + std::to_string(level) + ".";
        const int out = s_.ch * s_.ch_mult[static_cast<size_t>(level)];
        for (int j = 0; j < s_.num_res_blocks; ++j) {
          resnet(p + "block." + std::to_string(j) + ".", block_in, out);
          block_in = out;
          if (level == n - 1) attn(p + "attn." + std::to_string(j) + ".", block_in);
        }
        if (level != n - 1) conv(p + "downsample.conv.", block_in, block_in, 3);
      }
      mid("encoder.mid.", block_in);
      norm("encoder.norm_out.", block_in);
      conv("encoder.conv_out.", s_.cvae, block_in, 3);
      conv("quant_conv.", s_.cvae, s_.cvae, 3);
    }
    return ck_;
  }

 private:
  void add(const std::string& name, const Shape& shape, float scale, float offset = 0.0f) {
    Tensor t = Tensor::empty(DType::f32, shape);
    std::uniform_real_distribution<float> d(-scale, scale);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = offset + d(rng_);
    ck_.tensors[name] = t;
  }
  void conv(const std::string& p, int out, int in, int k) {
    add(p + "weight", {out, in, k, k}, 1.0f / std::sqrt(static_cast<float>(in * k * k)));
    add(p + "bias", {out}, 0.1f);
  }
  void norm(const std::string& p, int c) {
    add(p + "weight", {c}, 0.2f, 1.0f);
    add(p + "bias", {c}, 0.1f);
  }
  void resnet(const std::string& p, int in, int out) {
    norm(p + "norm1.", in);
    conv(p + "conv1.", out, in, 3);
    norm(p + "norm2.", out);
    conv(p + "conv2.", out, out, 3);
    if (in != out) conv(p + "nin_shortcut.", out, in, 1);
  }
  void attn(const std::string& p, int c) {
    norm(p + "norm.", c);
    conv(p + "qkv.", 3 * c, c, 1);
    conv(p + "proj_out.", c, c, 1);
  }
  void mid(const std::string& p, int c) {
    resnet(p + "block_1.", c, c);
    attn(p + "attn_1.", c);
    resnet(p + "block_2.", c, c);
  }

  RandomVqvaeSpec s_;
  std::mt19937 rng_;
  io::Checkpoint ck_;
};

inline io::Checkpoint random_vqvae_checkpoint(const RandomVqvaeSpec& spec) { return RandomVqvaeBuilder(spec).build(); }

}  // namespace varcode::testing
