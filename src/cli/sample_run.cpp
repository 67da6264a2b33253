#include "sample_run.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "class_list.hpp"
#include "text.hpp"
#include "varcode/error.hpp"
#include "varcode/io.hpp"

namespace varcode::cli {

std::vector<int> parse_class_ranges(const std::string& s, int num_classes, const std::vector<std::string>& names) {
  std::set<int> seen;
  for (int c : parse_classes(s, "--classes", num_classes, names))
    if (!seen.insert(c).second) throw Error("--classes: class " + std::to_string(c) + " is given twice");
  return {seen.begin(), seen.end()};
}

void parse_shard(const std::string& s, int* index, int* count) {
  const size_t slash = s.find('/');
  long long i = 0, n = 0;
  if (slash == std::string::npos || !parse_uint(s.substr(0, slash), &i) || !parse_uint(s.substr(slash + 1), &n))
    throw Error("--shard: expected I/N (e.g. 0/4), got '" + s + "'");
  if (n < 1 || i >= n) throw Error("--shard: " + s + ": I must be in [0, N) and N >= 1");
  *index = static_cast<int>(i);
  *count = static_cast<int>(n);
}

bool shard_from_environment(int* index, int* count) {
  const std::pair<const char*, const char*> vars[] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                                      {"PMI_RANK", "PMI_SIZE"}};
  for (const auto& [rank_var, size_var] : vars) {
    const char* r = std::getenv(rank_var);
    const char* n = std::getenv(size_var);
    if (!r || !n) continue;
    long long ri = 0, ni = 0;
    if (!parse_uint(r, &ri) || !parse_uint(n, &ni) || ni < 1 || ri >= ni)
      throw Error(std::string("the MPI launcher's ") + rank_var + "=" + r + " / " + size_var + "=" + n +
                  " do not make a shard (expected 0 <= rank < size)");
    *index = static_cast<int>(ri);
    *count = static_cast<int>(ni);
    return true;
  }
  // Slurm. An unset pair counts as task 0 of 1.
  auto slurm_pair = [](const char* rank_var, const char* size_var, const char* min_var, long long* r, long long* n) {
    const char* rs = std::getenv(rank_var);
    const char* ns = std::getenv(size_var);
    if (!rs || !ns) return false;
    long long lo = 0;
    const char* ms = min_var ? std::getenv(min_var) : nullptr;
    if (!parse_uint(rs, r) || !parse_uint(ns, n) || (ms && !parse_uint(ms, &lo)) || *r < lo || *n < 1 || *r - lo >= *n)
      throw Error(std::string("Slurm's ") + rank_var + "=" + rs + " / " + size_var + "=" + ns +
                  (ms ? std::string(" / ") + min_var + "=" + ms : "") +
                  " do not make a shard (expected 0 <= task - min < count; give --shard I/N instead)");
    *r -= lo;
    return true;
  };
  long long task = 0, tasks = 1, array = 0, arrays = 1;
  const bool srun = slurm_pair("SLURM_PROCID", "SLURM_NTASKS", nullptr, &task, &tasks);
  const bool job_array =
      slurm_pair("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", &array, &arrays);
  if (!srun && !job_array) return false;
  *index = static_cast<int>(array * tasks + task);
  *count = static_cast<int>(arrays * tasks);
  return true;
}

void shard_range(int64_t total, int index, int count, int64_t* begin, int64_t* end) {
  *begin = total * index / count;
  *end = total * (index + 1) / count;
}

std::string image_name(const SampleItem& it) { return std::to_string(it.cls) + "_" + std::to_string(it.j); }

uint32_t image_index(const SampleItem& it) {
  return static_cast<uint32_t>(it.cls) * kIndexStride + static_cast<uint32_t>(it.j);
}

nlohmann::json file_identity(const std::string& path) {
  nlohmann::json j;
  if (path.rfind("random", 0) == 0 && !std::filesystem::exists(path)) {
    j["name"] = path;
    return j;
  }
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read the model file: " + ec.message());
  // Hashing every byte of a 2 GB checkpoint on every start (and every shard)
  // would cost seconds; 64 blocks of 64 KiB spread evenly, plus the size, tell
  // different checkpoints apart just as well in practice (any retrained or
  // converted file differs almost everywhere).
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open the model file");
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  std::vector<char> block(65536);
  const uint64_t blocks = 64, span = bytes > block.size() ? bytes - block.size() : 0;
  for (uint64_t b = 0; b < blocks; ++b) {
    f.clear();
    f.seekg(static_cast<std::streamoff>(span * b / (blocks - 1)));
    f.read(block.data(), static_cast<std::streamsize>(block.size()));
    for (std::streamsize i = 0; i < f.gcount(); ++i)
      h = (h ^ static_cast<uint8_t>(block[static_cast<size_t>(i)])) * 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  j["name"] = std::filesystem::path(path).filename().string();
  j["bytes"] = bytes;
  j["fingerprint"] = hex;
  return j;
}

nlohmann::json RunSpec::to_json() const {
  nlohmann::json j;
  j["format"] = "varcode-sample-1";
  j["models"] = models;
  j["sampling"] = {{"cfg", sampling.cfg},
                   {"top_k", sampling.top_k},
                   {"top_p", sampling.top_p},
                   {"temperature", sampling.temperature},
                   {"smooth", sampling.smooth}};
  j["dtype"] = dtype;
  j["seed"] = seed;
  j["classes"] = classes;
  j["per_class"] = per_class;
  j["image_size"] = image_size;
  j["image_index"] = "class * " + std::to_string(kIndexStride) + " + j";
  return j;
}

RunSpec RunSpec::from_json(const nlohmann::json& j, const std::string& where) {
  try {
    if (j.at("format") != "varcode-sample-1") throw Error(where + ": unknown format " + j.at("format").dump());
    RunSpec r;
    r.models = j.at("models");
    const auto& s = j.at("sampling");
    r.sampling.cfg = s.at("cfg").get<double>();
    r.sampling.top_k = s.at("top_k").get<int>();
    r.sampling.top_p = s.at("top_p").get<double>();
    r.sampling.temperature = s.at("temperature").get<std::vector<double>>();
    r.sampling.smooth = s.at("smooth").get<bool>();
    r.dtype = j.at("dtype").get<std::string>();
    r.seed = j.at("seed").get<uint64_t>();
    r.classes = j.at("classes").get<std::vector<int>>();
    r.per_class = j.at("per_class").get<int>();
    r.image_size = j.at("image_size").get<int>();
    if (j.contains("kernels") && j["kernels"].is_array() && !j["kernels"].empty()) r.kernels = j["kernels"].dump();
    if (r.classes.empty() || r.per_class < 1 || r.image_size < 1)
      throw Error(where + ": empty run (no classes or images)");
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": not a varcode sample record: " + e.what());
  }
}

std::string run_json_path(const std::string& dir) { return dir + "/run.json"; }

RunSpec read_run(const std::string& dir) {
  const std::string path = run_json_path(dir);
  std::ifstream f(path);
  if (!f) throw Error(path + ": not found (is " + dir + " a `varcode sample` output directory?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": unreadable: " + e.what());
  }
  return RunSpec::from_json(j, path);
}

bool image_complete(const std::string& dir, const SampleItem& it, int side) {
  const std::string path = dir + "/" + image_name(it) + ".png";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  try {
    const Rgb8Image im = load_png_rgb8(path);  // decodes everything: truncation is caught
    return im.height == side && im.width == side;
  } catch (const Error&) {
    return false;
  }
}

void pack_run(const std::string& dir, const std::string& npz, bool quiet) {
  const RunSpec run = read_run(dir);
  const int64_t n = run.total(), S = run.image_size;
  if (!quiet && run.kernels.find("\",\"") != std::string::npos)
    std::fprintf(stderr, "warning: %s: its images were made on several kernel paths %s (last-bit differences)\n",
                 dir.c_str(), run.kernels.c_str());
  // Presence first (cheap), so that an unfinished run fails before any
  // decoding.
  int64_t missing = 0;
  std::string examples;
  for (int64_t k = 0; k < n; ++k) {
    const std::string name = image_name(run.item(k)) + ".png";
    if (!std::filesystem::exists(dir + "/" + name)) {
      if (missing < 3) examples += (missing ? ", " : "") + name;
      ++missing;
    }
  }
  if (missing)
    throw Error(dir + ": " + std::to_string(missing) + " of " + std::to_string(n) + " images are missing (" + examples +
                (missing > 3 ? ", ..." : "") +
                "); finish the run (rerun the same `varcode sample` command) "
                "before packing");
  const auto t0 = std::chrono::steady_clock::now();
  save_npz_u8(npz, "arr_0", {n, S, S, 3}, [&](int64_t k, uint8_t* dst) {
    const std::string path = dir + "/" + image_name(run.item(k)) + ".png";
    const Rgb8Image im = load_png_rgb8(path);
    if (im.height != S || im.width != S)
      throw Error(path + ": " + std::to_string(im.height) + "x" + std::to_string(im.width) + " pixels, expected " +
                  std::to_string(S) + "x" + std::to_string(S) + " as recorded in run.json");
    std::memcpy(dst, im.rgb.data(), im.rgb.size());  // [S, S, 3]
  });
  if (!quiet)
    std::fprintf(stderr,
                 "packed %lld images -> %s (arr_0: uint8 [%lld, %lld, %lld, 3], "
                 "class-major) in %.1f s\n",
                 static_cast<long long>(n), npz.c_str(), static_cast<long long>(n), static_cast<long long>(S),
                 static_cast<long long>(S),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace varcode::cli
