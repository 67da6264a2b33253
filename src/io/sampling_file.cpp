#include "io/sampling_file.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "varcode/error.hpp"

namespace varcode::io {

namespace {
using nlohmann::json;

double number_field(const json& v, const std::string& where) {
  if (!v.is_number() || !std::isfinite(v.get<double>()))
    throw Error(where + ": expected a finite number, got " + v.dump());
  return v.get<double>();
}

SamplingOverrides read_mode(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected an object of sampling settings, got " + j.dump());
  SamplingOverrides o;
  for (const auto& [key, v] : j.items()) {
    const std::string field = where + "." + key;
    if (key == "cfg") {
      o.cfg = number_field(v, field);
    } else if (key == "top_k") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t{1} << 30))
        throw Error(field + ": expected an integer >= 0 (0 disables), got " + v.dump());
      o.top_k = v.get<int>();
    } else if (key == "top_p") {
      const double p = number_field(v, field);
      if (p < 0 || p > 1) throw Error(field + ": expected a number in [0, 1] (0 disables), got " + v.dump());
      o.top_p = p;
    } else if (key == "temperature") {
      std::vector<double> t;
      if (v.is_array()) {
        for (const json& e : v) t.push_back(number_field(e, field));
      } else {
        t.push_back(number_field(v, field));
      }
      if (t.empty()) throw Error(field + ": expected a number > 0 or a list of them, got []");
      for (double x : t)
        if (!(x > 0)) throw Error(field + ": temperatures must be > 0, got " + v.dump());
      o.temperature = std::move(t);
    } else {
      throw Error(field + ": unknown field (expected cfg, top_k, top_p or temperature)");
    }
  }
  return o;
}
}  // namespace

SamplingFile read_sampling_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot be read");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": expected an object {\"var\": {...}, \"code\": {...}}, got " + j.dump());
  SamplingFile f;
  f.path = path;
  for (const auto& [key, v] : j.items()) {
    if (key == "var") {
      f.var = read_mode(v, path + ": field var");
    } else if (key == "code") {
      f.code = read_mode(v, path + ": field code");
    } else if (key == "note") {
      if (!v.is_string()) throw Error(path + ": field note: expected a string, got " + v.dump());
    } else {
      throw Error(path + ": field " + key + ": unknown field (expected var, code or note)");
    }
  }
  return f;
}

std::optional<SamplingFile> find_sampling_file(const std::string& model_path) {
  namespace fs = std::filesystem;
  const fs::path model(model_path);
  fs::path beside = model;
  beside.replace_extension(".sampling.json");
  for (const fs::path& p : {beside, model.parent_path() / "sampling.json"}) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return read_sampling_file(p.string());
  }
  return std::nullopt;
}

}  // namespace varcode::io
