// Flags shared by the commands that run a generation pipeline (generate, edit,
// sample, bench).
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "varcode/generator.hpp"

namespace varcode::cli {

// --device auto|cpu|cuda|cuda:I and --gpu I (every command that runs a model).
struct DeviceFlags {
  std::string device = "auto";
  bool device_given = false;  // an explicit --device auto also says where it ran
  int gpu = -1;
  int shard = -1;  // sample under sharding: with no --gpu, shard r takes GPU r mod the GPU count
  bool quiet = false;
};
void add_device_flags(CLI::App* cmd, DeviceFlags& f);
// The device the flags name (choose_device); says which on stderr when it is a GPU or when --device
// was given, unless quiet.
Device device_from_flags(const DeviceFlags& f);

struct PipelineFlags {
  DeviceFlags dev;
  std::string vae, model, drafter, refiner;
  int draft_steps = 0;
  bool draft_steps_given = false;  // --draft-steps 0 is an error, not the default
  std::string dtype = "auto";
  int threads = 0;
};

struct SamplingFlags {
  std::string cfg, top_k, top_p, temperature;  // empty = the mode's default
  bool smooth = false;
};

void add_pipeline_flags(CLI::App* cmd, PipelineFlags& f);
void add_sampling_flags(CLI::App* cmd, SamplingFlags& f);
// With no model flag at all, the built-in Fashion-MNIST pair
// (models/fashion_*.pth) is filled in: from $VARCODE_MODELS, else
// <executable>/../models (a build tree), else
// <executable>/../share/varcode/models (an installed tree). Error when a model
// flag is given without --vae, or when no built-in models are found (naming the
// places searched). --draft-steps N alone picks the pair fine-tuned for N
// (fashion_refiner_N.pth, fashion_drafter_N.pth when shipped) and says so on
// stderr; without it, N = 3 with its pair.
void apply_default_models(PipelineFlags& f);
// The built-in VQ-VAE (fashion_vae.pth), for decode / encode without --vae.
std::string builtin_vae();
// --patch-nums 1,2,3,... and --model VAR (take the schedule from a VAR model file) for decode and
// encode; schedule_flag gives the schedule they name, empty when neither is given.
void add_schedule_flags(CLI::App* cmd, std::string& patch_nums, std::string& model);
std::vector<int> schedule_flag(const std::string& patch_nums, const std::string& model);
// apply_default_models, checks the combination (--model xor the pair) and opens
// the generator.
Generator open_pipeline(PipelineFlags& f);
// The class names of the model (or drafter) file, see load_class_names; empty
// when none.
std::vector<std::string> class_names(const PipelineFlags& f, int num_classes);
// The generator's defaults overridden by the flags given; Error naming a bad
// flag value.
SamplingOptions sampling_from_flags(const SamplingFlags& f, const Generator& gen);
// "207,980" -> {207, 980}; Error naming `flag` for anything else.
std::vector<int> parse_int_list(const std::string& s, const std::string& flag);
std::vector<double> parse_double_list(const std::string& s, const std::string& flag);
// Progress on stderr: one line per scale, updated in place on a terminal;
// nothing when quiet.
ProgressFn stderr_progress(bool quiet);

}  // namespace varcode::cli
