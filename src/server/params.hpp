// Request bodies to engine work: the OpenAI images fields plus varcode's sampling fields, each
// checked with an error naming the field (a 400), before anything reaches the engine.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/served_model.hpp"
#include "varcode/generator.hpp"
#include "varcode/tensor.hpp"

namespace varcode::server {

// A client error: `field` names the request field at fault ("body" for the body as a whole).
class BadRequest : public std::runtime_error {
 public:
  BadRequest(std::string field, const std::string& message) : std::runtime_error(message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// One request's work.
struct WorkSpec {
  bool edit = false;
  std::vector<int> classes;  // one per image, in order (`--class PROMPT --per-class n`)
  uint64_t seed = 0;         // image i draws with (seed, image index i), as `varcode generate --seed`
  SamplingOptions sampling;
  int draft_steps = 0;  // CoDe hand-over; 0 = the pipeline's
  Tensor image;         // edits: [1, 3, S, S] in [0, 1]
  Tensor mask;          // edits: [S, S], 1 = regenerate
};

// POST /v1/images/generations and /v1/jobs: prompt, n, response_format, size, model, seed, cfg,
// top_k, top_p, temperature, smooth, draft_steps. An unknown field is an error (a typo must not be
// silently ignored).
WorkSpec parse_generation(const nlohmann::json& body, const ServedModel& model, const ServerOptions& opt);

// POST /v1/edits: the text fields (values as typed in a form: "1.5", "true", "sneaker"), the
// picture's PNG bytes and, optionally, a mask PNG's; exactly one of mask, box or outpaint.
struct EditUpload {
  nlohmann::json fields;  // object of strings
  std::string image_png;
  bool has_image = false;
  std::string mask_png;
  bool has_mask = false;
};
WorkSpec parse_edit(const EditUpload& up, const ServedModel& model, const ServerOptions& opt);

// A fresh random seed (when a request gives none).
uint64_t random_seed();

}  // namespace varcode::server
