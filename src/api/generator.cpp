#include "varcode/generator.hpp"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>

#include "api/random_checkpoint.hpp"
#include "api/thread_budget.hpp"
#include "backend/devices.hpp"
#include "io/checkpoint.hpp"
#include "io/sampling_file.hpp"
#include "kernels/cpu/gemm_int8.hpp"
#include "model/collaborative_decoder.hpp"
#include "model/var_transformer.hpp"
#include "model/vqvae.hpp"
#include "varcode/runtime.hpp"

namespace varcode {

struct Generator::Impl {
  std::unique_ptr<model::Vqvae> vae;
  std::unique_ptr<model::VarTransformer> drafter;  // the single model for VAR
  std::unique_ptr<model::VarTransformer> refiner;  // null for VAR
  std::unique_ptr<model::CollaborativeDecoder> decoder;
  DType dtype = DType::f32;
  SamplingOptions defaults;   // the published settings, or the model's sampling.json over them
  std::string sampling_file;  // that file; empty for the published settings
};

int64_t Generator::memory_per_image() const {
  // f32 KV caches (bf16 ones take half: the estimate errs on the safe side) of both CFG rows over every position, plus
  // the widest scale's activations
  // (~12 C floats per row), for the larger stage (the drafter's state is freed
  // before the refiner's is made); plus the VQ-VAE decoder's full-resolution
  // feature maps (~4 alive).
  auto stage = [](const model::VarConfig& c) {
    const int64_t L = c.total_tokens(), C = c.width, last = int64_t{c.patch_nums.back()} * c.patch_nums.back();
    return 2 * (2 * int64_t{c.depth} * L * C * 4 + last * 12 * C * 4);
  };
  int64_t bytes = stage(impl_->drafter->config());
  if (impl_->refiner) bytes = std::max(bytes, stage(impl_->refiner->config()));
  const int64_t side = image_size();
  const model::VaeConfig& v = impl_->vae->config();
  return bytes + 4 * int64_t{v.ch} * v.ch_mult.front() * side * side * 4;
}

int Generator::suggested_batch(int64_t available_bytes) const {
  if (available_bytes <= 0) {
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    int64_t kb = 0;
    while (meminfo >> key >> kb)
      if (key == "MemAvailable:") available_bytes = kb * 1024;
    if (available_bytes <= 0) available_bytes = int64_t{4} << 30;
  }
  // Half of what is free, and no more than 32 images: measured on CPUs, batches
  // beyond 8-32 give no more images per second, and they delay the first
  // results of a long run.
  return static_cast<int>(std::clamp<int64_t>(available_bytes / 2 / memory_per_image(), 1, 32));
}

namespace {
// "random:dNN" / "random" stand for random weights at the official sizes
// (benchmarks).
std::unique_ptr<model::VarTransformer> load_var(const std::string& path, DType dt,
                                                const std::shared_ptr<const backend::Backend>& be) {
  if (path.rfind("random:", 0) == 0) {
    model::RandomVarSpec spec = model::parse_random_var(path, "model");
    spec.matrix_dtype = dt;
    return std::make_unique<model::VarTransformer>(model::random_var_checkpoint(spec), dt, be);
  }
  io::Checkpoint ckpt = io::load_checkpoint(path);
  if (model::detect_kind(ckpt) != model::ModelKind::var)
    throw Error(path + ": is a VQ-VAE file, expected a VAR transformer");
  return std::make_unique<model::VarTransformer>(std::move(ckpt), dt, be);
}

// VAR's and CoDe's published FID settings (spec 5.2, 5.3).
SamplingOptions published_sampling(bool code, int num_scales) {
  SamplingOptions s;
  s.cfg = 1.5;
  s.top_p = 0.96;
  if (code) {
    s.top_k = 600;
    s.temperature.assign(static_cast<size_t>(num_scales), 1.0);
    for (int si = 0; si < num_scales && si <= 6; ++si) s.temperature[static_cast<size_t>(si)] = 1.1;
  } else {
    s.top_k = 900;
    s.temperature = {1.0};
  }
  return s;
}

model::SamplingSettings settings_of(const SamplingOptions& s, int num_scales);

// The mode's published settings, with the fields of the model's sampling.json (found beside the
// model, or the drafter of a pair) over them; checked as a request's settings are, so that a bad
// file fails at open, naming itself, and not at the first image.
// `file` gets the file's path, empty when there is none.
SamplingOptions default_sampling_of(const std::string& model_path, bool code, int num_scales, std::string* file) {
  SamplingOptions s = published_sampling(code, num_scales);
  file->clear();
  if (model_path.rfind("random:", 0) == 0) return s;
  // The model's path first, so that the front ends report a bad sampling.json as a file error.
  std::optional<io::SamplingFile> found;
  try {
    found = io::find_sampling_file(model_path);
  } catch (const Error& e) {
    throw Error(model_path + ": its sampling defaults: " + e.what());
  }
  if (!found) return s;
  const io::SamplingOverrides& o = code ? found->code : found->var;
  if (o.cfg) s.cfg = *o.cfg;
  if (o.top_k) s.top_k = *o.top_k;
  if (o.top_p) s.top_p = *o.top_p;
  if (o.temperature) s.temperature = *o.temperature;
  try {
    settings_of(s, num_scales);
  } catch (const Error& e) {
    throw Error(model_path + ": its sampling defaults: " + found->path + ": field " + (code ? "code" : "var") + ": " +
                e.what());
  }
  *file = found->path;
  return s;
}
}  // namespace

Generator Generator::open(const ModelFiles& files, ComputeDType dtype) {
  return open(files, dtype, backend::cpu_backend());
}

Generator Generator::open(const ModelFiles& files, ComputeDType dtype, Device device) {
  return open(files, dtype, backend::backend_for(device));
}

Device Generator::device() const { return impl_->drafter->backend().device(); }

Generator Generator::open(const ModelFiles& files, ComputeDType dtype, std::shared_ptr<const backend::Backend> be) {
  if (!be) throw Error("internal: no backend given");
  auto impl = std::make_shared<Impl>();
  const bool on_cpu = be->device().type != DeviceType::cuda;
  if (dtype == ComputeDType::int8 && !on_cpu)
    throw Error("--dtype int8 is a CPU feature (AVX512-VNNI or AVX-VNNI); on a GPU use --dtype bf16 (or f32)");
  if (dtype == ComputeDType::int8) {
    const std::string why = kernels::cpu::int8_unsupported_reason();  // before anything is loaded
    if (!why.empty()) throw Error(why);
  }
  impl->dtype = dtype == ComputeDType::f32    ? DType::f32
                : dtype == ComputeDType::bf16 ? DType::bf16
                : dtype == ComputeDType::int8 ? DType::i8
                                              : (!on_cpu || cpu_has_bf16() ? DType::bf16 : DType::f32);
  // The VQ-VAE's convolutions have no int8 form: under int8 they run as under auto.
  const DType vae_dtype = impl->dtype != DType::i8 ? impl->dtype : cpu_has_bf16() ? DType::bf16 : DType::f32;
  if (files.vae == "random") {
    impl->vae = std::make_unique<model::Vqvae>(model::Vqvae::load(model::random_vqvae_checkpoint({}), vae_dtype, be));
  } else {
    io::Checkpoint ckpt = io::load_checkpoint(files.vae);
    if (model::detect_kind(ckpt) != model::ModelKind::vqvae)
      throw Error(files.vae + ": is a VAR transformer, expected the VQ-VAE (--vae)");
    impl->vae = std::make_unique<model::Vqvae>(model::Vqvae::load(ckpt, vae_dtype, be));
  }
  const bool code = !files.drafter.empty() || !files.refiner.empty();
  if (code) {
    if (files.drafter.empty() || files.refiner.empty())
      throw Error("collaborative decoding needs both --drafter and --refiner");
    if (!files.model.empty()) throw Error("give either --model or --drafter/--refiner, not both");
    impl->drafter = load_var(files.drafter, impl->dtype, be);
    impl->refiner = load_var(files.refiner, impl->dtype, be);
  } else {
    if (files.model.empty()) throw Error("no model given: --model, or --drafter with --refiner");
    impl->drafter = load_var(files.model, impl->dtype, be);
  }
  impl->decoder = std::make_unique<model::CollaborativeDecoder>(*impl->drafter, impl->refiner.get(), files.draft_steps,
                                                                impl->vae->quantizer());
  impl->defaults = default_sampling_of(code ? files.drafter : files.model, code, impl->drafter->config().num_scales(),
                                       &impl->sampling_file);
  // Loading leaves the transient buffers of packing (a random checkpoint's tensors, bf16 or int8
  // conversions) in malloc's free lists, scattered between live weights where they are never
  // returned: hand their pages back, or they stay in the process's resident set for its lifetime.
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  Generator g;
  g.impl_ = impl;
  return g;
}

bool Generator::collaborative() const { return impl_->refiner != nullptr; }
int Generator::draft_steps() const { return impl_->decoder->draft_steps(); }
int Generator::num_classes() const { return impl_->drafter->config().num_classes; }
int Generator::num_scales() const { return impl_->drafter->config().num_scales(); }
std::vector<int> Generator::patch_nums() const { return impl_->drafter->config().patch_nums; }
int Generator::image_size() const {
  return impl_->drafter->config().patch_nums.back() * impl_->vae->config().downsample();
}
int Generator::total_tokens() const { return impl_->drafter->config().total_tokens(); }
DType Generator::compute_dtype() const { return impl_->dtype; }

SamplingOptions Generator::default_sampling() const { return impl_->defaults; }
const std::string& Generator::sampling_file() const { return impl_->sampling_file; }

double Generator::transformer_flops_per_image() const {
  auto per_token = [](const model::VarConfig& c) {
    const double C = c.width;
    return 2.0 * (12.0 * C * C * c.depth + C * c.vocab);
  };
  const model::VarConfig& d = impl_->drafter->config();
  const int N = draft_steps();
  double flops = 2.0 * per_token(d) * d.scale_end(N - 1);  // x2: CFG rows
  if (collaborative()) flops += 2.0 * per_token(impl_->refiner->config()) * d.total_tokens();
  return flops;
}

namespace {
model::SamplingSettings settings_of(const SamplingOptions& s, int num_scales) {
  model::SamplingSettings out;
  out.cfg = s.cfg;
  out.top_k = s.top_k;
  out.top_p = s.top_p;
  out.smooth = s.smooth;
  if (s.temperature.size() == 1) {
    out.temperature.assign(static_cast<size_t>(num_scales), s.temperature[0]);
  } else if (static_cast<int>(s.temperature.size()) == num_scales) {
    out.temperature = s.temperature;
  } else {
    throw Error("temperature: expected 1 or " + std::to_string(num_scales) + " values, got " +
                std::to_string(s.temperature.size()));
  }
  if (s.top_k < 0) throw Error("top-k must be >= 0");
  if (s.top_p < 0 || s.top_p > 1) throw Error("top-p must be in [0, 1]");
  for (double t : out.temperature)
    if (!(t > 0)) throw Error("temperature must be > 0");
  return out;
}

// The pipeline's decoder, or one with another hand-over point of the same pair (a decoder is only
// references and a number) made in *other.
const model::CollaborativeDecoder& decoder_for(const model::CollaborativeDecoder& pipeline,
                                               const model::VarTransformer& drafter,
                                               const model::VarTransformer* refiner, const model::Quantizer& quantizer,
                                               int wanted, std::optional<model::CollaborativeDecoder>* other) {
  if (wanted == 0 || wanted == pipeline.draft_steps()) return pipeline;
  if (!refiner)
    throw Error("draft_steps: this pipeline is a single VAR model (draft steps exist only for a CoDe pair)");
  other->emplace(drafter, refiner, wanted, quantizer);
  return **other;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// f_hat [B, Cvae, P, P] on the device -> pictures [B, 3, S, S] in [0, 1] on the host; adds the
// seconds it took to *seconds.
// be.decode_batch() images at a time: one on a CPU, where the decoder is compute-bound from one
// image on and a batch's feature maps (~20 MB per image per layer at 256 px) only add cache misses
// (measured ~16% slower per image at batch 8); many on a GPU.
Tensor decode_images(const model::Vqvae& vae, const Tensor& f_hat, double* seconds, detail::ThreadLease& lease) {
  const backend::Backend& be = vae.backend();
  const auto t = std::chrono::steady_clock::now();
  const int64_t B = f_hat.dim(0);
  Tensor img;  // [B, 3, S, S]
  const int64_t step = std::max<int64_t>(1, be.decode_batch());
  for (int64_t b = 0; b < B; b += step) {
    lease.rebalance();
    const int64_t nb = std::min(step, B - b);
    Tensor part = vae.fhat_to_img(f_hat.slice(b, nb));  // [nb, 3, S, S] in [-1, 1]
    if (!img.defined()) {
      Shape all = part.shape();
      all[0] = B;
      img = be.alloc(DType::f32, all);
    }
    be.copy_2d(part.raw(), 0, img.slice(b, nb).raw(), 0, static_cast<int64_t>(part.nbytes()), 1);
  }
  be.add_mul(img.data<float>(), img.numel(), 1.0f, 0.5f, img.data<float>());  // the reference's add_(1).mul_(0.5)
  Tensor host = be.to_host(img);                                              // the images' one trip back
  *seconds += seconds_since(t);
  return host;
}
}  // namespace

GenerateResult Generator::generate(const GenerateRequest& req, const ProgressFn& progress,
                                   const std::atomic<bool>* cancel) const {
  const int64_t n = static_cast<int64_t>(req.classes.size());
  if (n == 0) throw Error("nothing to generate: no classes given");
  for (int c : req.classes)
    if (c < 0 || c >= num_classes())
      throw Error("class " + std::to_string(c) + " is outside [0, " + std::to_string(num_classes()) + ")");
  if (req.batch < 0) throw Error("batch must be >= 0");
  if (!req.image_indices.empty() && req.image_indices.size() != req.classes.size())
    throw Error("image_indices: expected one index per class entry (" + std::to_string(req.classes.size()) + "), got " +
                std::to_string(req.image_indices.size()));
  const model::SamplingSettings settings = settings_of(req.sampling ? *req.sampling : default_sampling(), num_scales());
  if (!req.seeds.empty() && req.seeds.size() != req.classes.size())
    throw Error("seeds: expected one seed per class entry (" + std::to_string(req.classes.size()) + "), got " +
                std::to_string(req.seeds.size()));
  if (!req.image_sampling.empty() && req.image_sampling.size() != req.classes.size())
    throw Error("image_sampling: expected one setting per class entry (" + std::to_string(req.classes.size()) +
                "), got " + std::to_string(req.image_sampling.size()));
  std::vector<model::SamplingSettings> image_settings;
  for (const SamplingOptions& s : req.image_sampling) image_settings.push_back(settings_of(s, num_scales()));
  std::optional<model::CollaborativeDecoder> other_split;
  const model::CollaborativeDecoder& decoder = decoder_for(*impl_->decoder, *impl_->drafter, impl_->refiner.get(),
                                                           impl_->vae->quantizer(), req.draft_steps, &other_split);
  const int64_t L = total_tokens(), S = image_size(), batch = req.batch > 0 ? req.batch : n;
  detail::ThreadLease lease;  // this request's share of the process's threads
  GenerateResult res;
  res.tokens = Tensor::empty(DType::i64, {n, L});        // [n, L]
  res.images = Tensor::empty(DType::f32, {n, 3, S, S});  // [n, 3, S, S]
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t nb = std::min(batch, n - b0);
    model::GenerationInput in;
    in.seed = req.seed;
    in.sampling = settings;
    for (int64_t i = 0; i < nb; ++i) {
      in.labels.push_back(req.classes[static_cast<size_t>(b0 + i)]);
      in.image_index.push_back(req.image_indices.empty() ? req.first_index + static_cast<uint32_t>(b0 + i)
                                                         : req.image_indices[static_cast<size_t>(b0 + i)]);
      if (!req.seeds.empty()) in.seeds.push_back(req.seeds[static_cast<size_t>(b0 + i)]);
      if (!image_settings.empty()) in.image_sampling.push_back(image_settings[static_cast<size_t>(b0 + i)]);
    }
    const model::ScaleCallback on_scale = [&](const std::string& stage, int si, int sn) {
      lease.rebalance();
      if (progress) progress({stage, si, sn, b0, n, nb});
    };
    model::GenerationOutput out = decoder.run(in, on_scale, cancel);
    res.seconds.drafter += out.drafter_seconds;
    res.seconds.refiner += out.refiner_seconds;
    res.seconds.scales.resize(out.scale_seconds.size(), 0.0);
    for (size_t si = 0; si < out.scale_seconds.size(); ++si) res.seconds.scales[si] += out.scale_seconds[si];
    if (progress) progress({"vae", 0, 0, b0, n, nb});
    if (cancel && cancel->load()) throw Error("generation cancelled");
    Tensor img = decode_images(*impl_->vae, out.f_hat, &res.seconds.vae, lease);  // [nb, 3, S, S] in [0, 1]
    std::memcpy(res.tokens.data<int64_t>() + b0 * L, out.tokens.raw(), out.tokens.nbytes());
    std::memcpy(res.images.data<float>() + b0 * 3 * S * S, img.raw(), img.nbytes());
  }
  return res;
}

Tensor Generator::teacher_forced_logits(int stage, const Tensor& tokens, int class_label) const {
  const model::VarTransformer* m = stage == 0 ? impl_->drafter.get() : impl_->refiner.get();
  if (!m) throw Error("teacher_forced_logits: stage " + std::to_string(stage) + " does not exist in this pipeline");
  if (class_label < 0 || class_label >= num_classes()) throw Error("class out of range");
  detail::ThreadLease lease;
  return model::teacher_forced_logits(*m, impl_->vae->quantizer(), tokens, class_label);
}

GenerateResult Generator::edit(const EditRequest& req, const ProgressFn& progress,
                               const std::atomic<bool>* cancel) const {
  const int64_t S = image_size(), L = total_tokens();
  const std::vector<int> pns = patch_nums();
  const int64_t P = pns.back();
  if (req.image.dtype() != DType::f32 || req.image.shape() != Shape{1, 3, S, S})
    throw Error("edit: the picture must be f32 [1, 3, " + std::to_string(S) + ", " + std::to_string(S) + "], got " +
                shape_str(req.image.shape()));
  if (req.mask.dtype() != DType::f32 || req.mask.shape() != Shape{S, S})
    throw Error("edit: the mask must be f32 [" + std::to_string(S) + ", " + std::to_string(S) +
                "] at the picture's resolution, got " + shape_str(req.mask.shape()));
  if (req.class_label < 0 || req.class_label >= num_classes())
    throw Error("class " + std::to_string(req.class_label) + " is outside [0, " + std::to_string(num_classes()) + ")");
  if (!impl_->vae->has_encoder()) throw Error("edit: this VQ-VAE file has no encoder");
  const model::SamplingSettings settings = settings_of(req.sampling ? *req.sampling : default_sampling(), num_scales());
  std::optional<model::CollaborativeDecoder> other_split;
  const model::CollaborativeDecoder& decoder = decoder_for(*impl_->decoder, *impl_->drafter, impl_->refiner.get(),
                                                           impl_->vae->quantizer(), req.draft_steps, &other_split);

  detail::ThreadLease lease;  // this request's share of the process's threads
  const backend::Backend& be = impl_->vae->backend();
  // 1. The picture's cumulative latent after every scale (spec 5.4).
  Tensor img = be.to_device(req.image);                                        // [1, 3, S, S]
  be.add_mul(img.data<float>(), img.numel(), -0.5f, 2.0f, img.data<float>());  // to [-1, 1] (= 2x - 1 exactly)
  model::Quantizer::Quantized gt = impl_->vae->img_to_tokens(img, pns);
  // 2. The mask on the latent grid by nearest sampling; keep = 1 - mask.
  model::EditGuide guide;
  guide.f_hat_gt = gt.f_hat_per_scale;
  Tensor keep = Tensor::empty(DType::f32, {P, P});  // [P, P]
  for (int64_t i = 0; i < P; ++i)
    for (int64_t j = 0; j < P; ++j) {
      const float m = req.mask.data<float>()[(i * S / P) * S + (j * S / P)];
      keep.data<float>()[i * P + j] = 1.0f - m;
    }
  guide.keep = be.to_device(keep);
  // 3. Generate, blending after every scale.
  model::GenerationInput in;
  in.seed = req.seed;
  in.sampling = settings;
  in.labels = {req.class_label};
  in.image_index = {0};
  in.edit = &guide;
  const model::ScaleCallback on_scale = [&](const std::string& stage, int si, int sn) {
    lease.rebalance();
    if (progress) progress({stage, si, sn, 0, 1, 1});
  };
  model::GenerationOutput out = decoder.run(in, on_scale, cancel);
  GenerateResult res;
  res.seconds.drafter = out.drafter_seconds;
  res.seconds.refiner = out.refiner_seconds;
  res.seconds.scales = out.scale_seconds;
  if (progress) progress({"vae", 0, 0, 0, 1, 1});
  res.images = decode_images(*impl_->vae, out.f_hat, &res.seconds.vae, lease);  // [1, 3, S, S] in [0, 1]
  res.tokens = out.tokens;                                                      // [1, L]
  (void)L;
  return res;
}

}  // namespace varcode
