// Token sampling (spec §5.1): classifier-free guidance, top-k, top-p, temperature, and a
// counter-based generator so that every draw is a pure function of (seed, image, scale, position).
#pragma once
#include <cstdint>
#include <vector>

namespace varcode::model {

// Philox4x32-10: a keyed bijection of a 128-bit counter. Keyed by the seed; the counter is
// (image index, scale, position, draw), so a draw never depends on what other draws consumed.
struct CounterRng {
  uint64_t seed = 0;
  // A uniform double in [0, 1) with 53 random bits.
  double uniform(uint32_t image, uint32_t scale, uint32_t position, uint32_t draw) const;
  static void philox(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);
};

struct FilterParams {
  int top_k = 0;       // 0 disables; keeps logits >= the k-th largest (ties kept)
  double top_p = 0;    // 0 disables
  double temperature = 1.0;
};

// Applies top-k then top-p to `logits` [V] in place (removed entries become -inf), exactly as the
// reference's sample_with_top_k_top_p_ does.
void filter_logits(float* logits, int vocab, int top_k, double top_p);
// Filters, divides by the temperature and draws with the uniform `u` from the softmax; returns
// the token. Inverse-CDF over token order.
int sample_token(float* logits, int vocab, const FilterParams& params, double u);
// The probabilities the draw follows (for tests): softmax(filtered / temperature), [V].
std::vector<double> sampling_distribution(const float* logits, int vocab, const FilterParams& params);

// CFG: out [B, n, V] = (1 + t) * logits[cond rows] - t * logits[uncond rows], logits [2B, n, V].
void apply_cfg(const float* logits, int64_t batch, int64_t n, int64_t vocab, double t, float* out);
// The same with a strength per image: t[b] combines rows b and batch + b (the same arithmetic, so
// an image comes out as it does in apply_cfg with t = t[b]).
void apply_cfg_per_image(const float* logits, int64_t batch, int64_t n, int64_t vocab, const double* t, float* out);

}  // namespace varcode::model
