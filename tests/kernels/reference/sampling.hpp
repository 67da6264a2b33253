// Test-only: the sampler as first written (a full stable sort of the top-k survivors for top-p, a
// fresh weight vector per call): the plain statement of spec 5.1 that the engine's bucketed
// sampler (kernels/cpu/sampling.cpp) is tested against.
#pragma once
#include "kernels/cpu/sampling.hpp"

namespace varcode::kernels::cpu {

void filter_logits_reference(float* logits, int vocab, int top_k, double top_p);
int sample_token_reference(float* logits, int vocab, const FilterParams& params, double u);

}  // namespace varcode::kernels::cpu
