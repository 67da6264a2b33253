// Architecture hyper-parameters, inferred from tensor names and shapes alone (spec §1).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"

namespace varcode::model {

enum class ModelKind { var, vqvae };

struct VarConfig {
  int depth = 0;
  int width = 0;        // C
  int heads = 0;        // C / 64
  int vocab = 0;        // V
  int num_classes = 0;  // rows of class_emb minus the unconditional one
  int cvae = 0;         // latent channels fed to word_embed
  std::vector<int> patch_nums;
  bool shared_adaln = false;
  int64_t params = 0;

  int num_scales() const { return static_cast<int>(patch_nums.size()); }
  int total_tokens() const;       // L
  int scale_begin(int si) const;  // first position of scale si
  int scale_end(int si) const;    // one past its last
};

struct VaeConfig {
  int ch = 0;
  std::vector<int> ch_mult;  // e.g. (1, 1, 2, 2, 4)
  int num_res_blocks = 2;    // encoder; the decoder has one more per level
  int vocab = 0;
  int z_channels = 0;  // Cvae
  int in_channels = 3;
  bool has_encoder = true;
  int64_t params = 0;

  int downsample() const { return 1 << (static_cast<int>(ch_mult.size()) - 1); }
};

ModelKind detect_kind(const io::Checkpoint& ckpt);  // Error naming the file when neither
VarConfig infer_var_config(const io::Checkpoint& ckpt);
VaeConfig infer_vae_config(const io::Checkpoint& ckpt);

// The schedule a token count belongs to: L = 680 -> 256 px, 2240 -> 512 px, or any
// (1, 2, ..) schedule stored in metadata. Error when L matches none.
std::vector<int> schedule_for_tokens(int total_tokens);
int64_t count_params(const io::Checkpoint& ckpt);

}  // namespace varcode::model
