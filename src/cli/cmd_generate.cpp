// varcode generate: class-conditional images with VAR or CoDe.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <limits>
#include <memory>
#include <random>

#include "class_list.hpp"
#include "commands.hpp"
#include "model_flags.hpp"
#include "outputs.hpp"
#include "varcode/io.hpp"
#include "varcode/runtime.hpp"

namespace varcode::cli {

namespace {
struct GenerateFlags {
  PipelineFlags pipe;
  SamplingFlags sampling;
  std::string classes;
  int num = 1, per_class = 1;
  uint64_t seed = 0;
  bool seed_given = false;
  int batch = 0;
  std::string out, out_dir, save_tokens, save_image;
  bool quiet = false;
};

}  // namespace

void register_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto* cmd = app.add_subcommand("generate", "Generate class-conditional images (VAR or CoDe)");
  add_pipeline_flags(cmd, f->pipe);
  add_sampling_flags(cmd, f->sampling);
  cmd->add_option("--class", f->classes,
                  "Classes in order, one image each: numbers, ranges (0-9), "
                  "`all` or the model's class names "
                  "(--class sneaker); default random");
  cmd->add_option("--per-class", f->per_class, "Images of each --class, side by side in the grid (default 1)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--num", f->num, "Images with random classes when --class is not given (default 1)")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--seed", f->seed, "Seed (default: drawn and printed)")->each([f](const std::string&) {
    f->seed_given = true;
  });
  cmd->add_option("--batch", f->batch,
                  "Images per forward pass (default: chosen from the model and "
                  "the free memory)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  auto* out = cmd->add_option("--out", f->out, "One PNG grid of all images (default generated.png)");
  auto* out_dir = cmd->add_option("--out-dir", f->out_dir, "One PNG per image: DIR/000000.png ...");
  out->excludes(out_dir);
  cmd->add_option("--save-tokens", f->save_tokens, "int64 [B, L] tokens, scale after scale (.npy)");
  cmd->add_option("--save-image", f->save_image, "float32 [B, 3, H, W] images in [0, 1] (.npy)");
  cmd->add_flag("--quiet", f->quiet, "No progress on stderr");
  cmd->callback([f] {
    const auto t0 = std::chrono::steady_clock::now();
    // Every output is checked before the models load: a long run must not end in "cannot write".
    const std::string grid = f->out_dir.empty() ? (f->out.empty() ? "generated.png" : f->out) : "";
    check_output_file(grid, "--out");
    check_output_dir(f->out_dir, "--out-dir");
    check_output_file(f->save_tokens, "--save-tokens");
    check_output_file(f->save_image, "--save-image");
    f->pipe.dev.quiet = f->quiet;
    Generator gen = open_pipeline(f->pipe);
    GenerateRequest req;
    req.sampling = sampling_from_flags(f->sampling, gen);
    req.seed = f->seed_given ? f->seed : std::random_device{}() | (static_cast<uint64_t>(std::random_device{}()) << 32);
    if (!f->seed_given) std::cerr << "seed " << req.seed << "\n";
    if (!f->classes.empty()) {
      for (int c : parse_classes(f->classes, "--class", gen.num_classes(), class_names(f->pipe, gen.num_classes())))
        req.classes.insert(req.classes.end(), static_cast<size_t>(f->per_class), c);
    } else {
      if (f->per_class != 1) throw Error("--per-class: needs --class");
      std::mt19937_64 pick(req.seed);
      std::string shown;
      for (int i = 0; i < f->num; ++i) {
        req.classes.push_back(static_cast<int>(pick() % static_cast<uint64_t>(gen.num_classes())));
        shown += (i ? "," : "") + std::to_string(req.classes.back());
      }
      std::cerr << "classes " << shown << "\n";
    }
    const int64_t n = static_cast<int64_t>(req.classes.size());
    req.batch = f->batch > 0 ? f->batch : gen.suggested_batch();
    const auto t_open = std::chrono::steady_clock::now();
    // --out-dir streams: each batch is written before the next is made, so `--num 10000` never
    // holds more than one batch of images (plus --save-image's array, when asked for). Image i
    // draws with index i whatever the batch, so the files are those of one big request.
    const bool stream = !f->out_dir.empty();
    std::vector<std::string> names;
    if (stream) {
      for (int64_t i = 0; i < n; ++i) {
        char name[32];
        std::snprintf(name, sizeof(name), "%06lld", static_cast<long long>(i));
        names.emplace_back(name);
      }
      std::vector<std::string> files;
      for (const auto& nm : names) files.push_back(nm + ".png");
      remove_stale_temporaries(f->out_dir, files);
    }
    const int64_t chunk = stream ? req.batch : n;
    const ProgressFn show = stderr_progress(f->quiet);
    GenerateResult res;
    res.tokens = Tensor::empty(DType::i64, {n, gen.total_tokens()});  // [n, L]
    const int64_t S = gen.image_size();
    if (!stream || !f->save_image.empty()) res.images = Tensor::empty(DType::f32, {n, 3, S, S});  // [n, 3, S, S]
    for (int64_t b0 = 0; b0 < n; b0 += chunk) {
      GenerateRequest part = req;
      part.classes.assign(req.classes.begin() + b0, req.classes.begin() + std::min(n, b0 + chunk));
      part.first_index = static_cast<uint32_t>(b0);
      ProgressFn progress;
      if (show)
        progress = [&](const ProgressEvent& e) {
          ProgressEvent all = e;
          all.images_done += b0;
          all.images_total = n;
          show(all);
        };
      GenerateResult r = gen.generate(part, progress);
      const int64_t nb = r.tokens.dim(0);
      std::memcpy(res.tokens.data<int64_t>() + b0 * gen.total_tokens(), r.tokens.raw(), r.tokens.nbytes());
      if (res.images.defined())
        std::memcpy(res.images.data<float>() + b0 * 3 * S * S, r.images.raw(), r.images.nbytes());
      if (stream)
        save_pngs(f->out_dir, r.images,
                  std::vector<std::string>(names.begin() + b0, names.begin() + b0 + nb));  // each file atomic
      res.seconds.drafter += r.seconds.drafter;
      res.seconds.refiner += r.seconds.refiner;
      res.seconds.vae += r.seconds.vae;
    }
    if (!f->quiet && isatty(STDERR_FILENO)) std::cerr << "\n";
    if (!f->save_tokens.empty()) save_npy(f->save_tokens, res.tokens);
    if (!f->save_image.empty()) save_npy(f->save_image, res.images);
    std::string where;
    if (stream) {
      where = f->out_dir + "/";
    } else {
      where = grid;
      // one row per class when several images of each were asked for
      save_png(where, image_grid(res.images, f->per_class > 1 ? f->per_class : 0));
    }
    const double load_s = std::chrono::duration<double>(t_open - t0).count();
    const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_open).count();
    if (!f->quiet) {
      std::fprintf(stderr,
                   "%zu image(s) -> %s in %.2f s (%.2f s/image; %s %.2f s, "
                   "%s%.2f s, vae %.2f s; load %.2f s)\n",
                   req.classes.size(), where.c_str(), total_s, total_s / static_cast<double>(req.classes.size()),
                   gen.collaborative() ? "drafter" : "var", res.seconds.drafter, gen.collaborative() ? "refiner " : "-",
                   res.seconds.refiner, res.seconds.vae, load_s);
    }
  });
}

}  // namespace varcode::cli
