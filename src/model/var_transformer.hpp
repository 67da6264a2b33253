// A VAR transformer (spec §3): the immutable weights of one checkpoint, and the per-request
// state (KV caches, modulation, scratch) that generation runs with.
#pragma once
#include <memory>
#include <vector>

#include "backend/backend.hpp"
#include "io/checkpoint.hpp"
#include "model/config.hpp"
#include "model/transformer_block.hpp"
#include "varcode/tensor.hpp"

namespace varcode::model {

class VarTransformer;

// Everything one request mutates, on the model's device. Rows are the CFG-doubled batch: rows
// [0, B) carry the labels, rows [B, 2B) the unconditional class.
struct VarState {
  int64_t rows = 0;                                   // R = 2B
  int64_t capacity = 0;                               // positions the KV caches can hold
  int64_t filled = 0;                                 // positions written so far
  std::vector<std::unique_ptr<backend::KvCache>> kv;  // per block, R rows, laid out by the backend
  Tensor block_mod;                                   // [depth, R, 6C]
  Tensor head_mod;                                    // [R, 2C]  (scale, shift)
  Tensor cond;                                        // [R, C]
  BlockScratch scratch;
  Tensor head_h;  // [R, l, C]
};

class VarTransformer {
 public:
  // Validates every tensor against the inferred configuration (missing, unexpected, mis-shaped =
  // Error naming it). Matmul weights are held in `weight_dtype` (f32, bf16 or i8) by `be`; the
  // backend picks the attention's precision from it (bf16 under bf16 and i8 on the CPU).
  // check_only: validate the file without building the compute structures.
  VarTransformer(const io::Checkpoint& ckpt, DType weight_dtype = DType::f32, bool check_only = false,
                 std::shared_ptr<const backend::Backend> be = backend::cpu_backend());
  // Consumes the checkpoint: each tensor is released once converted or packed.
  VarTransformer(io::Checkpoint&& ckpt, DType weight_dtype,
                 std::shared_ptr<const backend::Backend> be = backend::cpu_backend());

  const backend::Backend& backend() const { return *be_; }

  const VarConfig& config() const { return cfg_; }
  const std::string& path() const { return path_; }

  // Fresh state for `labels` (B entries in [0, num_classes), on the host: they cross to the device
  // here); caches sized for `capacity` positions.
  VarState start(const std::vector<int>& labels, int64_t capacity) const;

  // The first scale's input: cond + pos_start + lvl_pos[0]  -> x [R, 1, C].
  void first_input(const VarState& st, float* x) const;
  // word_embed(tokens_in) + lvl_pos[p0 .. p0 + n), duplicated for the unconditional rows.
  // tokens_in: [B, n, Cvae] continuous token maps; x: [R, n, C]. Both on the device.
  void embed(const VarState& st, const float* tokens_in, int64_t n, int64_t p0, float* x) const;
  // Runs every block over x [R, l, C] at positions [p0, p0 + l) (block-causal), filling the cache.
  void blocks(VarState& st, float* x, int64_t l, int64_t p0) const;
  // logits [R, n, V] of the n tokens starting at token `from` of x [R, l, C].
  void head(VarState& st, const float* x, int64_t l, int64_t from, int64_t n, float* logits) const;

  int level_of(int64_t pos) const { return level_[static_cast<size_t>(pos)]; }
  // check_only: the matmul weights this model holds in `weight_dtype` (WeightSource::weights_in).
  const std::vector<std::string>& weights_in_compute_dtype() const { return compute_weights_; }

 private:
  std::shared_ptr<const backend::Backend> be_;
  std::string path_;
  VarConfig cfg_;
  DType weight_dtype_ = DType::f32;
  Tensor class_emb_;      // [num_classes + 1, C]
  Tensor first_pos_;      // [C] = pos_start + lvl_pos[0]
  Tensor lvl_pos_;        // [L, C] = lvl_embed[level(i)] + pos_1LC[i]
  LinearPtr word_embed_;  // [C, Cvae]
  LinearPtr shared_ada_;  // [6C, C], shared AdaLN only
  std::vector<TransformerBlock> blocks_;
  LinearPtr head_nm_ada_;                     // [2C, C]
  LinearPtr head_;                            // [V, C]
  std::vector<int> level_;                    // [L]
  std::vector<std::string> compute_weights_;  // check_only: WeightSource::weights_in(weight_dtype)

  void load(const io::Checkpoint& ckpt, WeightSource& ws, DType weight_dtype);
};

}  // namespace varcode::model
