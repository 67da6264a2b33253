#include "model_flags.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "varcode/inputs.hpp"
#include "varcode/io.hpp"
#include "varcode/model_info.hpp"
#include "varcode/runtime.hpp"
#include "varcode/vqvae.hpp"

namespace varcode::cli {

void add_device_flags(CLI::App* cmd, DeviceFlags& f) {
  cmd->add_option("--device", f.device,
                  "Where to run: auto (the first CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:I")
      ->default_str("auto")
      ->each([&f](const std::string&) { f.device_given = true; });
  cmd->add_option("--gpu", f.gpu, "The CUDA GPU to use (0, 1, ...; default 0, or shard r mod the GPUs under sharding)")
      ->check(CLI::Range(0, 1023));
}

Device device_from_flags(const DeviceFlags& f) {
  int gpu = f.gpu;
  if (gpu < 0 && f.shard >= 0 && (f.device == "auto" || f.device == "cuda")) {
    const int count = static_cast<int>(cuda_gpus().size());
    if (count > 0) gpu = f.shard % count;
  }
  std::string why;
  const Device d = choose_device(f.device, gpu, &why);
  static bool said = false;  // once per process (serve and sample open more than one model)
  if (!f.quiet && !said && (d.type == DeviceType::cuda || f.device_given)) {
    std::fprintf(stderr, "varcode: %s\n", why.c_str());
    said = true;
  }
  return d;
}

void add_pipeline_flags(CLI::App* cmd, PipelineFlags& f) {
  add_device_flags(cmd, f.dev);
  cmd->add_option("--vae", f.vae,
                  "VQ-VAE file (vae_ch160v4096z32.pth; `random` = random "
                  "weights, official size). With no model flag "
                  "at all, the built-in Fashion-MNIST models are used");
  auto* model = cmd->add_option("--model", f.model, "One VAR model (original VAR)");
  auto* drafter = cmd->add_option("--drafter", f.drafter, "CoDe drafter (var_d30.pth or drafter_N.pth)");
  auto* refiner = cmd->add_option("--refiner", f.refiner, "CoDe refiner (var_d16.pth or refiner_N.pth)");
  auto* steps = cmd->add_option("--draft-steps", f.draft_steps,
                                "Scales the drafter generates (1 .. SN-1); alone, with the built-in models, the pair "
                                "fine-tuned for it when there is one");
  steps->each([&f](const std::string&) { f.draft_steps_given = true; });
  model->excludes(drafter)->excludes(refiner)->excludes(steps);
  drafter->needs(refiner)->needs(steps);
  refiner->needs(drafter);  // --draft-steps alone: the built-in pair (apply_default_models)
  cmd->add_option("--dtype", f.dtype,
                  "Compute dtype: auto (bf16 on a GPU and where the CPU has it), f32, bf16, or int8 (int8 "
                  "transformer weights, CPUs with AVX512-VNNI or AVX-VNNI; never chosen by auto)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "int8"}));
  cmd->add_option("--threads", f.threads, "Worker threads (0 = all cores)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
}

void add_sampling_flags(CLI::App* cmd, SamplingFlags& f) {
  // The defaults named here are the published ones; a model's sampling.json replaces them
  // (Generator::default_sampling), and open_pipeline says so.
  cmd->add_option("--cfg", f.cfg, "Classifier-free guidance strength (default 1.5)");
  cmd->add_option("--top-k", f.top_k,
                  "Keep the k largest logits (0 disables, 1 = greedy; default "
                  "900 VAR, 600 CoDe)");
  cmd->add_option("--top-p", f.top_p, "Nucleus sampling mass (0 disables; default 0.96)");
  cmd->add_option("--temperature", f.temperature,
                  "T for every scale, or T0,...,T(SN-1) (default 1 VAR; CoDe "
                  "1.1 then 1.0; the model's sampling.json, when it has one, sets its own)");
  cmd->add_flag("--smooth", f.smooth, "Gumbel-softmax latents (smoother pictures; not for FID)");
}

std::vector<double> parse_double_list(const std::string& s, const std::string& flag) {
  std::vector<double> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || !std::isfinite(v))
      throw Error(flag + ": '" + item + "' is not a number (in '" + s + "')");
    out.push_back(v);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::vector<int> parse_int_list(const std::string& s, const std::string& flag) {
  std::vector<int> out;
  for (double v : parse_double_list(s, flag)) {
    if (v != std::floor(v) || std::fabs(v) > 1e9) throw Error(flag + ": '" + std::to_string(v) + "' is not an integer");
    out.push_back(static_cast<int>(v));
  }
  return out;
}

void apply_default_models(PipelineFlags& f) {
  if (f.vae.empty() && f.model.empty() && f.drafter.empty()) {
    ModelFiles builtin;
    const int wanted = f.draft_steps;
    try {
      builtin = builtin_model_files({}, f.draft_steps_given && wanted > 0 ? wanted : 0);
    } catch (const Error& e) {
      throw Error("no model given (--model, or --drafter/--refiner/--draft-steps, with --vae) and " +
                  std::string(e.what()));
    }
    f.vae = builtin.vae;
    f.drafter = builtin.drafter;
    f.refiner = builtin.refiner;
    f.draft_steps = f.draft_steps_given ? wanted : builtin.draft_steps;  // a bad N is the engine's to refuse
    const std::string n = std::to_string(f.draft_steps);
    if (f.refiner.ends_with("fashion_refiner_" + n + ".pth")) {
      const std::string drafter_name = std::filesystem::path(f.drafter).filename().string();
      std::fprintf(stderr,
                   "built-in models: the CoDe pair fine-tuned for --draft-steps %s (%s, fashion_refiner_%s.pth)\n",
                   n.c_str(), drafter_name.c_str(), n.c_str());
    }
    return;
  }
  if (f.drafter.empty() && f.draft_steps_given)
    throw Error(
        "--draft-steps: needs --drafter and --refiner (or no model flag at all: "
        "the built-in models)");
  if (f.vae.empty())
    throw Error(
        "--vae: required with --model or --drafter (no model flag at "
        "all = the built-in models)");
}

std::string builtin_vae() {
  try {
    return builtin_model_files().vae;
  } catch (const Error& e) {
    throw Error("--vae: not given, and " + std::string(e.what()));
  }
}

void add_schedule_flags(CLI::App* cmd, std::string& patch_nums, std::string& model) {
  auto* pn = cmd->add_option("--patch-nums", patch_nums,
                             "The scale schedule, e.g. 1,2,3,4,6,8 (default: the VAR model's with --model, else the "
                             "known schedule of the official and the built-in models)");
  auto* m = cmd->add_option("--model", model, "Take the schedule from this VAR model file");
  pn->excludes(m);
}

std::vector<int> schedule_flag(const std::string& patch_nums, const std::string& model) {
  if (!patch_nums.empty()) {
    const std::vector<int> pn = parse_int_list(patch_nums, "--patch-nums");
    VqvaeModel::check_schedule(pn, "--patch-nums");
    return pn;
  }
  if (!model.empty()) {
    const ModelInfo info = inspect_model(model);
    if (info.patch_nums.empty()) throw Error("--model: " + model + " is not a VAR model (it has no scale schedule)");
    return info.patch_nums;
  }
  return {};
}

std::vector<std::string> class_names(const PipelineFlags& f, int num_classes) {
  const std::string& file = f.model.empty() ? f.drafter : f.model;
  if (file.empty() || file.rfind("random:", 0) == 0) return {};
  return load_class_names(file, num_classes);
}

Generator open_pipeline(PipelineFlags& f) {
  apply_default_models(f);
  if (f.model.empty() && f.drafter.empty())
    throw Error("give either --model, or --drafter, --refiner and --draft-steps");
  set_num_threads(f.threads);
  ModelFiles files;
  files.vae = f.vae;
  files.model = f.model;
  files.drafter = f.drafter;
  files.refiner = f.refiner;
  files.draft_steps = f.draft_steps;
  const ComputeDType dt = f.dtype == "f32"    ? ComputeDType::f32
                          : f.dtype == "bf16" ? ComputeDType::bf16
                          : f.dtype == "int8" ? ComputeDType::int8
                                              : ComputeDType::automatic;
  const Device device = device_from_flags(f.dev);
  Generator gen = Generator::open(files, dt, device);
  if (!gen.sampling_file().empty() && !f.dev.quiet)
    std::fprintf(stderr, "sampling defaults: %s (any sampling flag given overrides its field)\n",
                 gen.sampling_file().c_str());
  return gen;
}

SamplingOptions sampling_from_flags(const SamplingFlags& f, const Generator& gen) {
  SamplingOptions s = gen.default_sampling();
  auto one = [](const std::string& v, const std::string& flag) {
    auto l = parse_double_list(v, flag);
    if (l.size() != 1) throw Error(flag + ": expected one number, got '" + v + "'");
    return l[0];
  };
  if (!f.cfg.empty()) s.cfg = one(f.cfg, "--cfg");
  if (!f.top_k.empty()) {
    const double k = one(f.top_k, "--top-k");
    if (k < 0 || k != std::floor(k)) throw Error("--top-k: expected a non-negative integer, got '" + f.top_k + "'");
    s.top_k = static_cast<int>(k);
  }
  if (!f.top_p.empty()) {
    s.top_p = one(f.top_p, "--top-p");
    if (s.top_p < 0 || s.top_p > 1) throw Error("--top-p: expected a value in [0, 1], got '" + f.top_p + "'");
  }
  if (!f.temperature.empty()) {
    s.temperature = parse_double_list(f.temperature, "--temperature");
    if (s.temperature.size() != 1 && static_cast<int>(s.temperature.size()) != gen.num_scales())
      throw Error("--temperature: expected 1 or " + std::to_string(gen.num_scales()) + " values (one per scale), got " +
                  std::to_string(s.temperature.size()));
    for (double t : s.temperature)
      if (t <= 0) throw Error("--temperature: values must be > 0");
  }
  s.smooth = f.smooth;
  return s;
}

// One line per scale; on a terminal the line updates in place.
ProgressFn stderr_progress(bool quiet) {
  if (quiet) return {};
  const bool tty = isatty(STDERR_FILENO);
  return [tty](const ProgressEvent& e) {
    if (e.stage == "vae") {
      // The images in flight: this batch's, not everything up to the total.
      const int64_t last = e.images_done + std::max<int64_t>(1, e.batch_images);
      std::fprintf(stderr, "%s[vae] decoding images %lld-%lld of %lld%s", tty ? "\r\033[K" : "",
                   static_cast<long long>(e.images_done + 1), static_cast<long long>(std::min(last, e.images_total)),
                   static_cast<long long>(e.images_total), tty ? "" : "\n");
    } else {
      std::fprintf(stderr, "%s[%s] scale %d/%d (images %lld/%lld done)%s", tty ? "\r\033[K" : "", e.stage.c_str(),
                   e.scale + 1, e.num_scales, static_cast<long long>(e.images_done),
                   static_cast<long long>(e.images_total), tty ? "" : "\n");
    }
    std::fflush(stderr);
  };
}

}  // namespace varcode::cli
