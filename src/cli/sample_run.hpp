// What a `varcode sample` directory holds and how it is laid out, shared by
// `sample` and `pack`: the work list (class-major, then j), file names, the
// per-image random index, the shard slices, and DIR/run.json, the record that
// makes a directory belong to one set of settings.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "varcode/generator.hpp"

namespace varcode::cli {

// Image j of class c draws with index c * kIndexStride + j: a fixed function of
// (c, j), so an image does not depend on --per-class, the class list, the batch
// or the shard it falls in.
constexpr uint32_t kIndexStride = 65536;

struct SampleItem {
  int cls = 0, j = 0;
};

// The settings that decide the pictures (and the expected set), as recorded in
// run.json.
struct RunSpec {
  nlohmann::json models;  // per file: name, bytes, fingerprint; draft_steps
  SamplingOptions sampling;
  std::string dtype;  // the resolved compute dtype ("f32" / "bf16" / "int8")
  // This process's kernel path (runtime.hpp kernel_path), recorded in run.json as "kernels", the
  // list of every path that made images in the directory; not part of to_json().
  std::string kernels;
  uint64_t seed = 0;
  std::vector<int> classes;  // ascending
  int per_class = 0;
  int image_size = 0;

  nlohmann::json to_json() const;
  static RunSpec from_json(const nlohmann::json& j, const std::string& where);
  int64_t total() const { return static_cast<int64_t>(classes.size()) * per_class; }
  SampleItem item(int64_t k) const {
    return {classes[static_cast<size_t>(k / per_class)], static_cast<int>(k % per_class)};
  }
};

// "0-999", "1,5,7", "0-3,10", names (parse_classes) -> ascending classes; Error
// naming --classes on a bad item, a class outside [0, num_classes) or a class
// given twice.
std::vector<int> parse_class_ranges(const std::string& s, int num_classes, const std::vector<std::string>& names = {});
// "I/N" -> {I, N}; Error unless 0 <= I < N.
void parse_shard(const std::string& s, int* index, int* count);
// The shard from a launcher's environment: an MPI launcher's (OpenMPI's
// OMPI_COMM_WORLD_RANK/SIZE, MPICH's PMI_RANK/PMI_SIZE), else Slurm's: srun's
// SLURM_PROCID/SLURM_NTASKS and a job array's SLURM_ARRAY_TASK_ID/COUNT
// (from SLURM_ARRAY_TASK_MIN), combined when both are set (array task a of A,
// srun task r of R: shard a * R + r of A * R); false when none is set.
bool shard_from_environment(int* index, int* count);
// Items [begin, end) of shard I of N: contiguous and balanced (sizes differ by
// at most one).
void shard_range(int64_t total, int index, int count, int64_t* begin, int64_t* end);

std::string image_name(const SampleItem& it);  // "<class>_<j>" (the published scripts' names)
uint32_t image_index(const SampleItem& it);

// name, size and a sampled content fingerprint of a model file ("random..."
// stands for itself).
nlohmann::json file_identity(const std::string& path);

std::string run_json_path(const std::string& dir);
// DIR/run.json parsed; Error when it is missing or unreadable.
RunSpec read_run(const std::string& dir);

// True when DIR/<name>.png is a complete, decodable PNG of side x side pixels.
bool image_complete(const std::string& dir, const SampleItem& it, int side);

// Checks every expected image of the run in DIR is there, then streams them
// into `npz` as arr_0, uint8 [N, H, W, 3], class-major then j. Error naming the
// missing images otherwise.
void pack_run(const std::string& dir, const std::string& npz, bool quiet);

}  // namespace varcode::cli
