// In-memory checkpoints with random weights (a source of weights beside the files, for `random:dNN`), laid out exactly as the official state_dicts, so that
// anyone can benchmark or test every model size without downloading the official files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"

namespace varcode::model {

struct RandomVqvaeSpec {
  int ch = 160;
  std::vector<int> ch_mult{1, 1, 2, 2, 4};
  int num_res_blocks = 2;  // encoder; the decoder has one more
  int vocab = 4096;
  int cvae = 32;
  bool encoder = true;
  uint32_t seed = 1;
};

struct RandomVarSpec {
  int depth = 16;  // width = 64 * depth, heads = depth, as the official family
  int num_classes = 1000;
  int vocab = 4096;
  int cvae = 32;
  std::vector<int> patch_nums{1, 2, 3, 4, 5, 6, 8, 10, 13, 16};
  bool shared_adaln = false;
  DType matrix_dtype =
      DType::f32;  // the large matrices (i8: codes and scales, as an int8 file); everything else is f32
  uint32_t seed = 1;
};

io::Checkpoint random_vqvae_checkpoint(const RandomVqvaeSpec& spec);
io::Checkpoint random_var_checkpoint(const RandomVarSpec& spec);

// "random:d30" -> a d30 spec (the 512 px schedule and shared AdaLN for d36, as var_d36); Error
// naming `what` for anything else.
RandomVarSpec parse_random_var(const std::string& name, const std::string& what);

}  // namespace varcode::model
