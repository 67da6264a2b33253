// varcode: class-conditional generation with one VAR model or a CoDe
// drafter/refiner pair.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

namespace varcode {

namespace backend {
class Backend;  // the library's device seam (src/backend/backend.hpp)
}

// Which files make the pipeline. `model` alone = original VAR; `drafter` +
// `refiner` + `draft_steps` = collaborative decoding. A path may be a .pth or a
// .safetensors file.
struct ModelFiles {
  std::string vae;
  std::string model;
  std::string drafter, refiner;
  int draft_steps = 0;
};

// automatic: bf16 where the CPU has AVX512-BF16, else f32 (never int8). int8: the transformers'
// linear layers (attention, MLP, AdaLN) with int8 weights per output channel and activations
// quantised per row at run time, attention in bf16, the head, embeddings and VQ-VAE as bf16 runs
// them; needs AVX512-VNNI (Error otherwise, saying so).
enum class ComputeDType { automatic, f32, bf16, int8 };

struct SamplingOptions {
  double cfg = 1.5;
  int top_k = 900;                       // 0 disables, 1 is greedy
  double top_p = 0.96;                   // 0 disables
  std::vector<double> temperature{1.0};  // one value for every scale, or one per scale
  bool smooth = false;                   // Gumbel-softmax latents (visual option, not for FID)
};

struct GenerateRequest {
  std::vector<int> classes;  // one image per entry, in order
  uint64_t seed = 0;
  uint32_t first_index = 0;  // image i draws with index first_index + i ...
  // ... unless given: one index per class entry, used instead (lets one batch
  // mix images whose indices are not consecutive, e.g. FID sampling keyed on
  // (class, j)).
  std::vector<uint32_t> image_indices;
  std::optional<SamplingOptions> sampling;  // default: default_sampling()
  int batch = 0;                            // images per forward pass; 0 = all at once
  // Per-image seed and sampling settings, so that one batch can carry the images of different
  // requests (`varcode serve` merging its clients' work): when given, one entry per class entry,
  // used instead of `seed` / `sampling`. An image still depends only on its own class, seed, index
  // and settings, never on the images it is batched with.
  std::vector<uint64_t> seeds;
  std::vector<SamplingOptions> image_sampling;
  // CoDe: the drafter's scales for this request (1 .. SN-1) instead of the pipeline's draft_steps
  // (the pair's weights serve any hand-over point); 0 = the pipeline's. Error with a single model.
  int draft_steps = 0;
};

struct StageSeconds {
  double drafter = 0, refiner = 0, vae = 0;
  std::vector<double> scales;  // transformer seconds per scale (drafter's, then refiner's), summed over batches
};

struct GenerateResult {
  Tensor tokens;  // [B, L] int64, scale after scale
  Tensor images;  // [B, 3, H, W] f32 in [0, 1]
  StageSeconds seconds;
};

struct ProgressEvent {
  std::string stage;  // "var", "drafter", "refiner" or "vae"
  int scale = 0, num_scales = 0;
  int64_t images_done = 0, images_total = 0;
  int64_t batch_images = 0;  // images in flight: images_done + 1 .. images_done + batch_images
};
using ProgressFn = std::function<void(const ProgressEvent&)>;

// Zero-shot editing inputs (picture in [0, 1], mask 1 = regenerate at the
// picture's resolution).
struct EditRequest {
  Tensor image;  // [1, 3, H, W] f32 in [0, 1], H = W = the pipeline's image size
  Tensor mask;   // [H, W] f32
  int class_label = 0;
  uint64_t seed = 0;
  std::optional<SamplingOptions> sampling;
  int draft_steps = 0;  // as GenerateRequest::draft_steps
};

// The loaded weights: immutable once opened, safe to share between threads and
// concurrent requests. Each call to generate() makes its own state (KV caches,
// scratch).
class Generator {
 public:
  static Generator open(const ModelFiles& files, ComputeDType dtype = ComputeDType::f32);
  // The same on a given backend (the library's device selection and its tests use it).
  static Generator open(const ModelFiles& files, ComputeDType dtype, std::shared_ptr<const backend::Backend> be);
  // On a device (choose_device(), varcode/runtime.hpp): the weights are uploaded to it once, here.
  // On cuda, automatic is bf16 and int8 is refused (a CPU feature).
  static Generator open(const ModelFiles& files, ComputeDType dtype, Device device);

  Device device() const;

  bool collaborative() const;
  int draft_steps() const;  // number of drafter scales (= num_scales for VAR)
  int num_classes() const;
  int num_scales() const;
  std::vector<int> patch_nums() const;
  int image_size() const;
  int total_tokens() const;
  DType compute_dtype() const;  // i8 for ComputeDType::int8
  // The published FID settings: VAR cfg 1.5, top-k 900, top-p 0.96, T 1; CoDe
  // cfg 1.5, top-k 600, top-p 0.96, T 1.1 on scales 0-6 then 1.0. A model that ships its own
  // (`<model>.sampling.json` beside the model file, or the drafter of a pair, else `sampling.json`
  // in its directory: {"var": {...}, "code": {...}} with any of cfg, top_k, top_p, temperature)
  // has the fields it gives replaced: the built-in Fashion-MNIST models do (models/README.md).
  // A malformed file is an Error at open naming it and the field.
  SamplingOptions default_sampling() const;
  // The sampling.json default_sampling() took fields from; empty when it is the published settings.
  const std::string& sampling_file() const;
  // Multiply-adds x 2 of the transformer GEMMs for one image (CFG included) and
  // of the VAE decode.
  double transformer_flops_per_image() const;
  // Estimated working memory of one image in a batch (KV caches, activations,
  // VAE decode), on top of the weights.
  int64_t memory_per_image() const;
  // A batch size for long runs: what fits in half of `available_bytes`
  // (default: the system's MemAvailable), at most 32.
  int suggested_batch(int64_t available_bytes = 0) const;

  GenerateResult generate(const GenerateRequest& req, const ProgressFn& progress = {},
                          const std::atomic<bool>* cancel = nullptr) const;
  GenerateResult edit(const EditRequest& req, const ProgressFn& progress = {},
                      const std::atomic<bool>* cancel = nullptr) const;

  // Teacher-forced logits [1, L, V] of the drafter (stage 0, or the single
  // model) or the refiner (stage 1) for tokens [1, L] and a class, without CFG.
  Tensor teacher_forced_logits(int stage, const Tensor& tokens, int class_label) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace varcode
