// varcode sample / varcode pack: FID-scale sampling into a directory of PNGs
// (resumable, shardable) and packing that directory into the evaluator's .npz.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <thread>
#include <unordered_set>

#include "commands.hpp"
#include "model_flags.hpp"
#include "outputs.hpp"
#include "sample_run.hpp"
#include "varcode/io.hpp"
#include "varcode/runtime.hpp"

namespace varcode::cli {

namespace {

struct SampleFlags {
  PipelineFlags pipe;
  SamplingFlags sampling;
  std::string out_dir, classes, shard, npz;
  int per_class = 50;
  uint64_t seed = 0;
  int batch = 0;
  bool force = false, quiet = false;
};

// SIGINT / SIGTERM ask the run to stop after the images in flight; a second
// signal kills (the handler restores the default action).
std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int sig) {
  g_stop.store(true);
  ::signal(sig, SIG_DFL);
}

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string dtype_str(DType d) { return d == DType::bf16 ? "bf16" : d == DType::i8 ? "int8" : "f32"; }

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--";
  const long long t = std::llround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%02lld:%02lld", t / 60, t % 60);
  return buf;
}

// done/total, images per second and ETA: one line updated in place on a
// terminal, a plain line at most every 10 s otherwise (logs of batch jobs).
class Progress {
 public:
  Progress(int64_t total, bool quiet) : total_(total), quiet_(quiet), tty_(isatty(STDERR_FILENO)) {}
  void update(int64_t done, bool force = false) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!tty_ && !force && now - last_ < std::chrono::seconds(10)) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double rate = el > 0 ? static_cast<double>(done) / el : 0;
    std::fprintf(stderr, "%s[sample] %lld/%lld images (%.1f%%), %.2f images/s, ETA %s%s", tty_ ? "\r\033[K" : "",
                 static_cast<long long>(done), static_cast<long long>(total_),
                 total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0, rate,
                 rate > 0 ? hms(static_cast<double>(total_ - done) / rate).c_str() : "--:--", tty_ ? "" : "\n");
    std::fflush(stderr);
  }
  void end_line() {
    if (!quiet_ && tty_) std::fprintf(stderr, "\n");
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  int64_t total_;
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now(), last_{};
};

// DIR/run.json: written when absent; otherwise it must describe this very run
// (the same models, sampling settings, seed and expected set), unless --force,
// which records this run instead.
void claim_directory(const std::string& dir, const RunSpec& spec, bool force) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the output directory: " + ec.message());
  const std::string path = run_json_path(dir);
  nlohmann::json mine = nlohmann::json::parse(spec.to_json().dump());  // as it reads back
  // The kernel paths the images were made on are recorded apart from the settings: a shard or a
  // resumed run on another path (AVX-512 against AVX2, oneDNN) may go on, with a warning, since
  // its images differ from the others only in their last bits.
  nlohmann::json kernels = nlohmann::json::array({spec.kernels});
  if (std::filesystem::exists(path)) {
    nlohmann::json theirs;
    std::ifstream f(path);
    try {
      theirs = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception&) {
      theirs = nlohmann::json();
    }
    nlohmann::json their_kernels = nlohmann::json::array();
    if (theirs.is_object() && theirs.contains("kernels")) {
      if (theirs["kernels"].is_array()) their_kernels = theirs["kernels"];
      theirs.erase("kernels");
    }
    if (theirs == mine) {
      for (const auto& k : their_kernels)
        if (k == spec.kernels) return;
      std::fprintf(stderr,
                   "warning: %s: its images so far were made on other kernels (%s), this process runs %s: the "
                   "two give slightly different pixels for the same seed (FID is unaffected; for bit-identical "
                   "runs use one kind of CPU, or VARCODE_GEMM=onednn everywhere)\n",
                   dir.c_str(), their_kernels.dump().c_str(), spec.kernels.c_str());
      their_kernels.push_back(spec.kernels);
      mine["kernels"] = their_kernels;
      save_text(path, mine.dump(2) + "\n");
      return;
    }
    std::string what = "its run.json is unreadable";
    if (theirs.is_object())
      for (const auto& [key, value] : mine.items())
        if (!theirs.contains(key) || theirs[key] != value) {
          what = "its run.json records another " + key + " (" + (theirs.contains(key) ? theirs[key].dump() : "none") +
                 ", this run: " + value.dump() + ")";
          break;
        }
    if (!force)
      throw Error(dir + " holds images of another run: " + what +
                  "; use another --out-dir, or --force to use this directory "
                  "anyway (images already there are kept)");
    std::fprintf(stderr,
                 "warning: --force: %s; recording this run's settings, keeping "
                 "the images already there\n",
                 what.c_str());
  }
  mine["kernels"] = kernels;
  save_text(path, mine.dump(2) + "\n");
}

// With --npz under sharding, shard 0 packs once every shard's images are there.
// It polls the directory and gives up when no new image has appeared for
// `stall_s` (a shard died).
bool wait_for_other_shards(const std::string& dir, const RunSpec& run, double stall_s, bool quiet) {
  int64_t last_missing = -1;
  auto last_change = std::chrono::steady_clock::now();
  for (;;) {
    int64_t missing = 0;
    for (int64_t k = 0; k < run.total(); ++k)
      if (!std::filesystem::exists(dir + "/" + image_name(run.item(k)) + ".png")) ++missing;
    if (missing == 0) return true;
    if (missing != last_missing) {
      if (!quiet)
        std::fprintf(stderr, "[sample] waiting for %lld images from the other shards\n",
                     static_cast<long long>(missing));
      last_missing = missing;
      last_change = std::chrono::steady_clock::now();
    }
    if (g_stop.load() ||
        std::chrono::duration<double>(std::chrono::steady_clock::now() - last_change).count() > stall_s)
      return false;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
}

void run_sample(SampleFlags& f) {
  if (f.per_class < 1 || f.per_class > static_cast<int>(kIndexStride))
    throw Error("--per-class: expected 1 to " + std::to_string(kIndexStride) + ", got " + std::to_string(f.per_class));
  int shard = 0, shards = 1;
  if (!f.shard.empty())
    parse_shard(f.shard, &shard, &shards);
  else
    shard_from_environment(&shard, &shards);

  check_output_dir(f.out_dir, "--out-dir");
  check_output_file(f.npz, "--npz");
  const auto t_load = std::chrono::steady_clock::now();
  f.pipe.dev.quiet = f.quiet;
  if (shards > 1) f.pipe.dev.shard = shard;
  Generator gen = open_pipeline(f.pipe);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  if (gen.num_classes() > static_cast<int>(kIndexStride))
    throw Error("models with more than 65536 classes are not supported");
  RunSpec spec;
  spec.classes = parse_class_ranges(f.classes.empty() ? "all" : f.classes, gen.num_classes(),
                                    class_names(f.pipe, gen.num_classes()));
  spec.per_class = f.per_class;
  spec.seed = f.seed;
  spec.sampling = sampling_from_flags(f.sampling, gen);
  spec.dtype = dtype_str(gen.compute_dtype());
  spec.kernels = kernel_path(gen.compute_dtype(), gen.device());
  spec.image_size = gen.image_size();
  if (gen.collaborative())
    spec.models = {{"vae", file_identity(f.pipe.vae)},
                   {"drafter", file_identity(f.pipe.drafter)},
                   {"refiner", file_identity(f.pipe.refiner)},
                   {"draft_steps", gen.draft_steps()}};
  else
    spec.models = {{"vae", file_identity(f.pipe.vae)}, {"model", file_identity(f.pipe.model)}};
  claim_directory(f.out_dir, spec, f.force);

  // This shard's slice, minus what is already there (a previous, interrupted
  // run).
  int64_t begin = 0, end = 0;
  shard_range(spec.total(), shard, shards, &begin, &end);
  std::unordered_set<std::string> mine;
  for (int64_t k = begin; k < end; ++k) mine.insert(image_name(spec.item(k)) + ".png");
  // Temporaries of a killed run (NAME.png.tmp.PID) for images of this shard are
  // stale: no other process writes them.
  for (const auto& e : std::filesystem::directory_iterator(f.out_dir)) {
    const std::string name = e.path().filename().string();
    const size_t tmp = name.find(".png.tmp.");
    if (tmp != std::string::npos && mine.count(name.substr(0, tmp + 4))) std::filesystem::remove(e.path());
  }
  std::vector<char> done(static_cast<size_t>(end - begin), 0);
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t k = begin; k < end; ++k)
    done[static_cast<size_t>(k - begin)] = image_complete(f.out_dir, spec.item(k), spec.image_size) ? 1 : 0;
  std::vector<int64_t> todo;
  for (int64_t k = begin; k < end; ++k)
    if (!done[static_cast<size_t>(k - begin)]) todo.push_back(k);
  const int64_t already = (end - begin) - static_cast<int64_t>(todo.size());
  if (!f.quiet) {
    std::fprintf(stderr,
                 "[sample] %s: %lld images (%zu classes x %d)%s; %lld already "
                 "done, %zu to generate (load %.1f s)\n",
                 f.out_dir.c_str(), static_cast<long long>(spec.total()), spec.classes.size(), spec.per_class,
                 shards > 1 ? (", shard " + std::to_string(shard) + "/" + std::to_string(shards) + " takes " +
                               std::to_string(end - begin))
                                  .c_str()
                            : "",
                 static_cast<long long>(already), todo.size(), load_s);
  }

  // Default: what fits in half the free memory, at most 32
  // (Generator::suggested_batch).
  const int64_t batch = f.batch > 0 ? f.batch : gen.suggested_batch();
  if (!f.quiet)
    std::fprintf(stderr, "batch %lld%s (about %.0f MB of working memory per image)\n", static_cast<long long>(batch),
                 f.batch > 0 ? "" : ", chosen from the free memory and the model",
                 static_cast<double>(gen.memory_per_image()) / 1e6);
  install_stop_handlers();
  Progress progress(static_cast<int64_t>(todo.size()), f.quiet);
  progress.update(0, true);
  int64_t generated = 0;
  StageSeconds stage;
  for (size_t b0 = 0; b0 < todo.size(); b0 += static_cast<size_t>(batch)) {
    if (g_stop.load()) break;
    GenerateRequest req;
    req.seed = spec.seed;
    req.sampling = spec.sampling;
    std::vector<std::string> names;
    // Classes mix freely inside a batch: each image keys its draws on its own
    // (class, j) index.
    for (size_t i = b0; i < std::min(todo.size(), b0 + static_cast<size_t>(batch)); ++i) {
      const SampleItem it = spec.item(todo[i]);
      req.classes.push_back(it.cls);
      req.image_indices.push_back(image_index(it));
      names.push_back(image_name(it));
    }
    GenerateResult res;
    try {
      res = gen.generate(req, {}, &g_stop);
    } catch (const Error&) {
      if (!g_stop.load()) throw;
      break;  // interrupted mid-batch: that batch is abandoned, nothing of it
              // was written
    }
    save_pngs(f.out_dir, res.images, names);  // each file atomic
    generated += static_cast<int64_t>(names.size());
    stage.drafter += res.seconds.drafter;
    stage.refiner += res.seconds.refiner;
    stage.vae += res.seconds.vae;
    progress.update(generated, b0 + names.size() == todo.size());
  }
  progress.end_line();
  const double secs = progress.seconds();
  if (g_stop.load() && generated < static_cast<int64_t>(todo.size()))
    throw Interrupted("interrupted: " + std::to_string(already + generated) + " of this run's " +
                      std::to_string(end - begin) + " images are in " + f.out_dir +
                      "; rerun the same command to resume");
  if (!f.quiet) {
    std::fprintf(stderr,
                 "[sample] %lld images in %.1f s: %.3f images/s, %.3f s/image "
                 "(%s %.1f s, %srefiner %.1f s, vae %.1f s)\n",
                 static_cast<long long>(generated), secs, secs > 0 ? static_cast<double>(generated) / secs : 0.0,
                 generated ? secs / static_cast<double>(generated) : 0.0, gen.collaborative() ? "drafter" : "var",
                 stage.drafter, gen.collaborative() ? "" : "no ", stage.refiner, stage.vae);
  }

  if (!f.npz.empty()) {
    if (shard != 0) {
      if (!f.quiet)
        std::fprintf(stderr,
                     "[sample] --npz: shard 0 packs the images once "
                     "every shard is done\n");
      return;
    }
    if (shards > 1) {
      // The other shards run at about this pace; allow them ten of our batches'
      // time past ours.
      const double per_batch = generated ? secs / static_cast<double>(generated) * static_cast<double>(batch) : 60.0;
      if (!wait_for_other_shards(f.out_dir, spec, std::max(600.0, 10 * per_batch), f.quiet))
        throw Error(
            "the other shards did not finish; when they have, run: "
            "varcode pack " +
            f.out_dir + " --npz " + f.npz);
    }
    pack_run(f.out_dir, f.npz, f.quiet);
  }
}

}  // namespace

void register_sample(CLI::App& app) {
  auto f = std::make_shared<SampleFlags>();
  auto* cmd = app.add_subcommand("sample",
                                 "FID sampling: --per-class images of every class as "
                                 "DIR/<class>_<j>.png (resumable, shardable)");
  add_pipeline_flags(cmd, f->pipe);
  add_sampling_flags(cmd, f->sampling);
  cmd->add_option("--out-dir", f->out_dir, "Output directory (DIR/<class>_<j>.png, DIR/run.json)")->required();
  cmd->add_option("--classes", f->classes, "Classes: ranges and lists such as 0-999, 1,5,7, 0-3,10 (default: all)");
  cmd->add_option("--per-class", f->per_class, "Images per class (default 50)");
  cmd->add_option("--seed", f->seed, "Seed; image j of class c draws with (seed, c * 65536 + j) (default 0)");
  cmd->add_option("--batch", f->batch,
                  "Images per forward pass, classes mixed (default: chosen from the "
                  "model and the free memory, at most 32)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  cmd->add_option("--shard", f->shard,
                  "I/N: take slice I of N (default: from mpirun's environment, "
                  "else the whole run)");
  cmd->add_option("--npz", f->npz, "Also pack the images into this .npz at the end (as `varcode pack`)");
  cmd->add_flag("--force", f->force, "Use a directory made with other settings anyway (its images are kept)");
  cmd->add_flag("--quiet", f->quiet, "No progress on stderr");
  cmd->callback([f] { run_sample(*f); });
}

void register_pack(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto npz = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("pack",
                                 "Pack a `varcode sample` directory into an "
                                 ".npz (arr_0: uint8 [N, H, W, 3])");
  cmd->add_option("dir", *dir, "The directory `varcode sample` wrote")->required();
  cmd->add_option("--npz", *npz, "Output .npz (the OpenAI guided-diffusion evaluator's format)")->required();
  cmd->add_flag("--quiet", *quiet, "No summary on stderr");
  cmd->callback([dir, npz, quiet] {
    check_output_file(*npz, "--npz");
    pack_run(*dir, *npz, *quiet);
  });
}

}  // namespace varcode::cli
