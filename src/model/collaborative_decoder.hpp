// Next-scale generation: original VAR (one model for every scale) and collaborative decoding
// (a drafter for scales [0, draft_steps), a refiner for the rest; spec §5.2-§5.4). One loop
// serves both: VAR is the case with no refiner.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "model/quantizer.hpp"
#include "model/sampler.hpp"
#include "model/var_transformer.hpp"

namespace varcode::model {

struct SamplingSettings {
  double cfg = 1.5;
  int top_k = 900;
  double top_p = 0.96;
  std::vector<double> temperature;  // one per scale
  bool smooth = false;               // the reference's more_smooth (Gumbel-softmax latents)
};

// Zero-shot editing (spec §5.4): after each scale the latent keeps the picture where keep = 1.
struct EditGuide {
  std::vector<Tensor> f_hat_gt;  // per scale, [1, Cvae, P, P]: the picture's cumulative latent
  Tensor keep;                   // [P, P], 1 = keep the picture, 0 = regenerate
};

struct GenerationInput {
  std::vector<int> labels;             // B classes
  std::vector<uint32_t> image_index;   // B: the index keying each image's random draws
  uint64_t seed = 0;
  SamplingSettings sampling;
  // Per image (B entries) when not empty, instead of `seed` / `sampling`: one batch may carry
  // images of different requests.
  std::vector<uint64_t> seeds;
  std::vector<SamplingSettings> image_sampling;
  const EditGuide* edit = nullptr;
};

struct GenerationOutput {
  Tensor tokens;  // [B, L] int64
  Tensor f_hat;   // [B, Cvae, P, P]
  double drafter_seconds = 0, refiner_seconds = 0;
  std::vector<double> scale_seconds;  // [SN]: each scale's transformer, head and sampling
};

// stage ("drafter", "refiner" or "var"), scale index, number of scales.
using ScaleCallback = std::function<void(const std::string& stage, int scale, int num_scales)>;

class CollaborativeDecoder {
 public:
  // refiner == nullptr: original VAR with `drafter` on every scale (draft_steps ignored).
  CollaborativeDecoder(const VarTransformer& drafter, const VarTransformer* refiner, int draft_steps,
                       const Quantizer& quantizer);

  GenerationOutput run(const GenerationInput& in, const ScaleCallback& on_scale = {},
                       const std::atomic<bool>* cancel = nullptr) const;

  int draft_steps() const { return draft_steps_; }

 private:
  const VarTransformer& drafter_;
  const VarTransformer* refiner_;
  int draft_steps_;
  const Quantizer& quantizer_;
};

// Teacher forcing: one pass over every position with the block-causal mask, the inputs built
// from `tokens` [1, L]; class `label`, no CFG. Returns logits [1, L, V].
Tensor teacher_forced_logits(const VarTransformer& model, const Quantizer& quantizer, const Tensor& tokens, int label);

}  // namespace varcode::model
