// The sampling settings the generation tests share.
#pragma once
#include "varcode/generator.hpp"

namespace varcode::test {

// Greedy (top-k 1): the tokens are the argmax, comparable across devices and dtypes.
inline SamplingOptions greedy_sampling() {
  SamplingOptions s;
  s.cfg = 1.5;
  s.top_k = 1;
  s.top_p = 0;
  s.temperature = {1.0};
  return s;
}

// CoDe's published stochastic settings (cfg 1.5, top-k 600, top-p 0.96, T 1.1).
inline SamplingOptions code_sampling() {
  SamplingOptions s;
  s.cfg = 1.5;
  s.top_k = 600;
  s.top_p = 0.96;
  s.temperature = {1.1};
  return s;
}

}  // namespace varcode::test
