// varcode bench: end-to-end seconds per image, throughput and peak memory of generate, measured
// after a warm-up; random weights at the official sizes with random:dNN / --vae random.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "model_flags.hpp"
#include "varcode/runtime.hpp"

namespace varcode::cli {

namespace {
struct BenchFlags {
  PipelineFlags pipe;
  SamplingFlags sampling;
  int batch = 1, warmup = 1, runs = 3;
  uint64_t seed = 0;
  bool json = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}
}  // namespace

void register_bench(CLI::App& app) {
  auto f = std::make_shared<BenchFlags>();
  auto* cmd = app.add_subcommand("bench",
                                 "Measure generation speed and memory (model flags as generate; random:dNN and "
                                 "--vae random give random weights at official sizes)");
  add_pipeline_flags(cmd, f->pipe);
  add_sampling_flags(cmd, f->sampling);
  cmd->add_option("--batch", f->batch, "Images per generate call (default 1)")
      ->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--warmup", f->warmup, "Untimed runs first (default 1)")
      ->check(CLI::Range(0, std::numeric_limits<int>::max()));
  cmd->add_option("--runs", f->runs, "Timed runs (default 3)")->check(CLI::Range(1, std::numeric_limits<int>::max()));
  cmd->add_option("--seed", f->seed, "Seed (default 0)");
  cmd->add_flag("--json", f->json, "One JSON object on stdout");
  cmd->callback([f] {
    const auto t0 = std::chrono::steady_clock::now();
    Generator gen = open_pipeline(f->pipe);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    GenerateRequest req;
    req.sampling = sampling_from_flags(f->sampling, gen);
    req.seed = f->seed;
    for (int i = 0; i < f->batch; ++i) req.classes.push_back((i * 97 + 207) % gen.num_classes());
    std::vector<double> total, drafter, refiner, vae;
    std::vector<std::vector<double>> scales;  // [scale][run]
    for (int r = 0; r < f->warmup + f->runs; ++r) {
      const auto t = std::chrono::steady_clock::now();
      GenerateResult res = gen.generate(req);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
      if (!f->json)
        std::fprintf(stderr, "%s %d: %.3f s (%.3f s/image)\n", r < f->warmup ? "warm-up" : "run",
                     r < f->warmup ? r + 1 : r - f->warmup + 1, s, s / f->batch);
      if (r < f->warmup) continue;
      total.push_back(s / f->batch);
      drafter.push_back(res.seconds.drafter / f->batch);
      refiner.push_back(res.seconds.refiner / f->batch);
      vae.push_back(res.seconds.vae / f->batch);
      scales.resize(res.seconds.scales.size());
      for (size_t si = 0; si < scales.size(); ++si) scales[si].push_back(res.seconds.scales[si] / f->batch);
    }
    std::vector<double> scale_median;
    for (auto& s : scales) scale_median.push_back(median(s));
    const double spi = median(total);
    const double tr_s = median(drafter) + median(refiner);
    const double gflops = tr_s > 0 ? gen.transformer_flops_per_image() / tr_s / 1e9 : 0;
    nlohmann::ordered_json j;
    j["mode"] = gen.collaborative() ? "code" : "var";
    j["model"] = f->pipe.model.empty() ? f->pipe.drafter + " + " + f->pipe.refiner : f->pipe.model;
    if (gen.collaborative()) j["draft_steps"] = gen.draft_steps();
    j["device"] = device_name(gen.device());
    if (gen.device().type == DeviceType::cuda)
      for (const GpuInfo& g : cuda_gpus())
        if (g.index == gen.device().index) j["gpu"] = g.name;
    j["dtype"] = dtype_name(gen.compute_dtype());
    j["kernels"] = kernel_path(gen.compute_dtype(), gen.device());
    j["threads"] = num_threads();
    j["batch"] = f->batch;
    j["runs"] = f->runs;
    j["s_per_image"] = spi;
    j["images_per_s"] = 1.0 / spi;
    j["drafter"] = median(drafter);
    j["refiner"] = median(refiner);
    j["vae"] = median(vae);
    j["scale_seconds"] = scale_median;
    j["transformer_gflop_per_image"] = gen.transformer_flops_per_image() / 1e9;
    j["transformer_gflop_per_s"] = gflops;
    j["load_s"] = load_s;
    j["peak_rss_bytes"] = peak_rss_bytes();
    const int64_t gpu_peak = device_peak_memory(gen.device());
    if (gen.device().type == DeviceType::cuda) j["gpu_peak_bytes"] = gpu_peak;
    if (f->json) {
      std::cout << j.dump() << "\n";
      return;
    }
    std::printf("%-28s %s\n", "mode", j["mode"].get<std::string>().c_str());
    std::printf("%-28s %s%s\n", "device", device_name(gen.device()).c_str(),
                j.contains("gpu") ? (" (" + j["gpu"].get<std::string>() + ")").c_str() : "");
    std::printf("%-28s %s, %d thread(s), batch %d, %d run(s)\n", "dtype", dtype_name(gen.compute_dtype()),
                num_threads(), f->batch, f->runs);
    std::printf("%-28s %s\n", "kernels", j["kernels"].get<std::string>().c_str());
    std::printf("%-28s %.3f\n", "seconds per image (median)", spi);
    std::printf("%-28s %.3f\n", "images per second", 1.0 / spi);
    std::printf("%-28s drafter %.3f  refiner %.3f  vae %.3f\n", "stage seconds per image", median(drafter),
                median(refiner), median(vae));
    std::printf("%-28s", "seconds per image by scale");
    for (double s : scale_median) std::printf(" %.3f", s);
    std::printf("\n");
    std::printf("%-28s %.1f GFLOP/image at %.1f GFLOP/s\n", "transformer", gen.transformer_flops_per_image() / 1e9,
                gflops);
    std::printf("%-28s %.2f GB\n", "peak RSS", static_cast<double>(peak_rss_bytes()) / 1e9);
    if (gen.device().type == DeviceType::cuda)
      std::printf("%-28s %.2f GB\n", "peak GPU memory", static_cast<double>(gpu_peak) / 1e9);
    std::printf("%-28s %.2f s\n", "load", load_s);
  });
}

}  // namespace varcode::cli
