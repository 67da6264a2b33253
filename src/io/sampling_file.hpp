// Sampling defaults that travel with a model (sampling.json): the settings its makers measured
// best for it, which the published FID settings (tuned for the official ImageNet models) need not
// be. Only the fields a file gives override the published ones.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace varcode::io {

struct SamplingOverrides {
  std::optional<double> cfg;
  std::optional<int> top_k;
  std::optional<double> top_p;
  std::optional<std::vector<double>> temperature;  // 1 value, or one per scale
};

struct SamplingFile {
  std::string path;
  SamplingOverrides var;   // one VAR model
  SamplingOverrides code;  // a CoDe drafter/refiner pair
};

// The file for a model: `<model without extension>.sampling.json` beside it, else `sampling.json`
// in its directory; nullopt when neither exists. Error naming the file and the field for anything
// but {"var": {...}, "code": {...}, "note": "..."} with the fields cfg (number), top_k (integer
// >= 0), top_p (number in [0, 1]) and temperature (a number > 0 or a list of them); the number of
// temperatures is checked against the model's scales where the file is used.
std::optional<SamplingFile> find_sampling_file(const std::string& model_path);
SamplingFile read_sampling_file(const std::string& path);

}  // namespace varcode::io
