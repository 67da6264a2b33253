// The built-in Fashion-MNIST models of the source tree (models/), as the tests that run on them
// open them. Only for varcode_tests (VARCODE_SOURCE_DIR).
#pragma once
#include <string>

#include "varcode/generator.hpp"

namespace varcode::test {

inline const std::string kShippedModels = std::string(VARCODE_SOURCE_DIR) + "/models/";

// The CoDe pair with N drafter scales.
inline ModelFiles shipped_pair(int draft_steps = 3) {
  ModelFiles f;
  f.vae = kShippedModels + "fashion_vae.pth";
  f.drafter = kShippedModels + "fashion_drafter.pth";
  f.refiner = kShippedModels + "fashion_refiner.pth";
  f.draft_steps = draft_steps;
  return f;
}

// The drafter alone (VAR).
inline ModelFiles shipped_drafter() {
  ModelFiles f;
  f.vae = kShippedModels + "fashion_vae.pth";
  f.model = kShippedModels + "fashion_drafter.pth";
  return f;
}

}  // namespace varcode::test
