// Flags shared by the commands that run a generation pipeline (generate, edit, sample, bench).
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "varcode/generator.hpp"

namespace varcode::cli {

struct PipelineFlags {
  std::string vae, model, drafter, refiner;
  int draft_steps = 0;
  std::string dtype = "auto";
  int threads = 0;
};

struct SamplingFlags {
  std::string cfg, top_k, top_p, temperature;  // empty = the mode's default
  bool smooth = false;
};

void add_pipeline_flags(CLI::App* cmd, PipelineFlags& f);
void add_sampling_flags(CLI::App* cmd, SamplingFlags& f);
// Checks the combination (--model xor the pair) and opens the generator.
Generator open_pipeline(const PipelineFlags& f);
// The generator's defaults overridden by the flags given; Error naming a bad flag value.
SamplingOptions sampling_from_flags(const SamplingFlags& f, const Generator& gen);
// "207,980" -> {207, 980}; Error naming `flag` for anything else.
std::vector<int> parse_int_list(const std::string& s, const std::string& flag);
std::vector<double> parse_double_list(const std::string& s, const std::string& flag);
// Progress on stderr: one line per scale, updated in place on a terminal; nothing when quiet.
ProgressFn stderr_progress(bool quiet);

}  // namespace varcode::cli
