#include "kernels/cpu/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/philox.hpp"

namespace varcode::kernels::cpu {

// Both live in kernels/philox.hpp, which the CUDA sampler includes too: one set of bits everywhere.
void CounterRng::philox(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  philox4x32_10(counter, key, out);
}

double CounterRng::uniform(uint32_t image, uint32_t scale, uint32_t position, uint32_t draw) const {
  return counter_uniform(seed, image, scale, position, draw);
}

void filter_logits(float* logits, int vocab, int top_k, double top_p) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (top_k > 0 && top_k < vocab) {
    std::vector<float> vals(logits, logits + vocab);
    std::nth_element(vals.begin(), vals.begin() + (top_k - 1), vals.end(), std::greater<float>());
    const float kth = vals[static_cast<size_t>(top_k - 1)];
    for (int i = 0; i < vocab; ++i)
      if (logits[i] < kth) logits[i] = kNegInf;
  }
  if (top_p > 0) {
    // Only survivors of top-k carry probability; sort those ascending (ties by index, stable).
    std::vector<int> idx;
    idx.reserve(static_cast<size_t>(vocab));
    for (int i = 0; i < vocab; ++i)
      if (logits[i] != kNegInf) idx.push_back(i);
    if (idx.empty()) return;
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] < logits[b]; });
    const float mx = logits[idx.back()];
    double z = 0;
    for (int i : idx) z += std::exp(static_cast<double>(logits[i] - mx));
    double cum = 0;
    const double threshold = 1.0 - top_p;
    for (size_t j = 0; j + 1 < idx.size(); ++j) {  // the largest is never removed
      cum += std::exp(static_cast<double>(logits[idx[j]] - mx)) / z;
      if (cum <= threshold)
        logits[idx[j]] = kNegInf;
      else
        break;  // cumulative sums only grow
    }
  }
}

namespace {
std::vector<double> weights_after_filter(const float* logits, int vocab, double temperature, double* total) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) mx = std::max(mx, logits[i]);
  std::vector<double> w(static_cast<size_t>(vocab), 0.0);
  double z = 0;
  for (int i = 0; i < vocab; ++i) {
    if (logits[i] == -std::numeric_limits<float>::infinity()) continue;
    w[static_cast<size_t>(i)] = std::exp((static_cast<double>(logits[i]) - mx) / temperature);
    z += w[static_cast<size_t>(i)];
  }
  *total = z;
  return w;
}
}  // namespace

int sample_token(float* logits, int vocab, const FilterParams& params, double u) {
  filter_logits(logits, vocab, params.top_k, params.top_p);
  double z = 0;
  std::vector<double> w = weights_after_filter(logits, vocab, params.temperature, &z);
  const double target = u * z;
  double cum = 0;
  int last = -1;
  for (int i = 0; i < vocab; ++i) {
    if (w[static_cast<size_t>(i)] <= 0) continue;
    cum += w[static_cast<size_t>(i)];
    last = i;
    if (cum > target) return i;
  }
  return last < 0 ? 0 : last;  // rounding at u -> 1
}

std::vector<double> sampling_distribution(const float* logits, int vocab, const FilterParams& params) {
  std::vector<float> l(logits, logits + vocab);
  filter_logits(l.data(), vocab, params.top_k, params.top_p);
  double z = 0;
  std::vector<double> w = weights_after_filter(l.data(), vocab, params.temperature, &z);
  for (double& x : w) x /= z;
  return w;
}

void apply_cfg_rows(const float* cond, const float* uncond, int64_t n, double t, float* out) {
  // The reference multiplies f32 tensors by Python floats: both factors are rounded to f32 once.
  const float a = static_cast<float>(1.0 + t), b = static_cast<float>(t);
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = a * cond[i] - b * uncond[i];
}

void apply_cfg(const float* logits, int64_t batch, int64_t n, int64_t vocab, double t, float* out) {
  const int64_t half = batch * n * vocab;
  apply_cfg_rows(logits, logits + half, half, t, out);
}

}  // namespace varcode::kernels::cpu
