#include "model_flags.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "varcode/io.hpp"
#include "varcode/runtime.hpp"

namespace varcode::cli {

void add_pipeline_flags(CLI::App* cmd, PipelineFlags& f) {
  cmd->add_option("--vae", f.vae,
                  "VQ-VAE file (vae_ch160v4096z32.pth; `random` = random "
                  "weights, official size). With no model flag "
                  "at all, the built-in Fashion-MNIST models are used");
  auto* model = cmd->add_option("--model", f.model, "One VAR model (original VAR)");
  auto* drafter = cmd->add_option("--drafter", f.drafter, "CoDe drafter (var_d30.pth or drafter_N.pth)");
  auto* refiner = cmd->add_option("--refiner", f.refiner, "CoDe refiner (var_d16.pth or refiner_N.pth)");
  auto* steps = cmd->add_option("--draft-steps", f.draft_steps, "Scales the drafter generates (1 .. SN-1)");
  model->excludes(drafter)->excludes(refiner)->excludes(steps);
  drafter->needs(refiner)->needs(steps);
  refiner->needs(drafter);
  steps->needs(drafter);
  cmd->add_option("--dtype", f.dtype,
                  "Compute dtype: auto (bf16 where the CPU has it), f32, bf16, or int8 (int8 transformer weights, "
                  "AVX512-VNNI CPUs; never chosen by auto)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "int8"}));
  cmd->add_option("--threads", f.threads, "Worker threads (0 = all cores)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
}

void add_sampling_flags(CLI::App* cmd, SamplingFlags& f) {
  cmd->add_option("--cfg", f.cfg, "Classifier-free guidance strength (default 1.5)");
  cmd->add_option("--top-k", f.top_k,
                  "Keep the k largest logits (0 disables, 1 = greedy; default "
                  "900 VAR, 600 CoDe)");
  cmd->add_option("--top-p", f.top_p, "Nucleus sampling mass (0 disables; default 0.96)");
  cmd->add_option("--temperature", f.temperature,
                  "T for every scale, or T0,...,T(SN-1) (default 1 VAR; CoDe "
                  "1.1 then 1.0)");
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

namespace {
// CoDe hand-over for the built-in pair: the drafter draws scales 1-3 of 6 (14
// of 130 tokens).
constexpr int kBuiltinDraftSteps = 3;

std::string builtin_models_dir() {
  namespace fs = std::filesystem;
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("VARCODE_MODELS"); env && *env) {
    tried.emplace_back(env);
  } else {
    std::error_code ec;
    const fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
    if (!ec) {
      tried.push_back(exe_dir / ".." / "models");
      tried.push_back(exe_dir / ".." / "share" / "varcode" / "models");
    }
  }
  std::string where;
  for (const fs::path& dir : tried) {
    if (fs::exists(dir / "fashion_drafter.pth")) return fs::weakly_canonical(dir).string();
    where += (where.empty() ? "" : ", ") + dir.lexically_normal().string();
  }
  throw Error(
      "no model given (--model, or --drafter/--refiner/--draft-steps, "
      "with --vae) and the built-in Fashion-MNIST "
      "models are not found (looked for fashion_drafter.pth in: " +
      (where.empty() ? std::string("nowhere") : where) + "; set VARCODE_MODELS to their directory)");
}
}  // namespace

void apply_default_models(PipelineFlags& f) {
  if (f.vae.empty() && f.model.empty() && f.drafter.empty()) {
    const std::string dir = builtin_models_dir();
    f.vae = dir + "/fashion_vae.pth";
    f.drafter = dir + "/fashion_drafter.pth";
    f.refiner = dir + "/fashion_refiner.pth";
    f.draft_steps = kBuiltinDraftSteps;
    return;
  }
  if (f.vae.empty())
    throw Error(
        "--vae: required with --model or --drafter (no model flag at "
        "all = the built-in models)");
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
  return Generator::open(files, dt);
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
      std::fprintf(stderr, "%s[vae] decoding images %lld-%lld of %lld%s", tty ? "\r\033[K" : "",
                   static_cast<long long>(e.images_done + 1), static_cast<long long>(e.images_total),
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
