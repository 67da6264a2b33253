#include "kernels/reference/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace varcode::kernels::cpu {

void filter_logits_reference(float* logits, int vocab, int top_k, double top_p) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (top_k > 0 && top_k < vocab) {
    std::vector<float> vals(logits, logits + vocab);
    std::nth_element(vals.begin(), vals.begin() + (top_k - 1), vals.end(), std::greater<float>());
    const float kth = vals[static_cast<size_t>(top_k - 1)];
    for (int i = 0; i < vocab; ++i)
      if (logits[i] < kth) logits[i] = kNegInf;
  }
  if (top_p <= 0) return;
  // Survivors in ascending order (ties by index); remove from the bottom while the cumulative
  // probability stays <= 1 - p; the largest is never removed.
  std::vector<int> idx;
  for (int i = 0; i < vocab; ++i)
    if (logits[i] != kNegInf) idx.push_back(i);
  if (idx.empty()) return;
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] < logits[b]; });
  const float mx = logits[idx.back()];
  double z = 0;
  for (int i : idx) z += std::exp(static_cast<double>(logits[i] - mx));
  double cum = 0;
  for (size_t j = 0; j + 1 < idx.size(); ++j) {
    cum += std::exp(static_cast<double>(logits[idx[j]] - mx)) / z;
    if (cum > 1.0 - top_p) break;
    logits[idx[j]] = kNegInf;
  }
}

int sample_token_reference(float* logits, int vocab, const FilterParams& params, double u) {
  filter_logits_reference(logits, vocab, params.top_k, params.top_p);
  float mx = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) mx = std::max(mx, logits[i]);
  std::vector<double> w(static_cast<size_t>(vocab), 0.0);
  double z = 0;
  for (int i = 0; i < vocab; ++i) {
    if (logits[i] == -std::numeric_limits<float>::infinity()) continue;
    w[static_cast<size_t>(i)] = std::exp((static_cast<double>(logits[i]) - mx) / params.temperature);
    z += w[static_cast<size_t>(i)];
  }
  double cum = 0;
  int last = -1;
  for (int i = 0; i < vocab; ++i) {  // inverse CDF in token order
    if (w[static_cast<size_t>(i)] <= 0) continue;
    cum += w[static_cast<size_t>(i)];
    last = i;
    if (cum > u * z) return i;
  }
  return last < 0 ? 0 : last;
}

}  // namespace varcode::kernels::cpu
