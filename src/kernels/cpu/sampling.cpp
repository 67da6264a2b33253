#include "kernels/cpu/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "kernels/philox.hpp"

namespace varcode::kernels::cpu {

// Both live in kernels/philox.hpp, which the CUDA sampler includes too: one set of bits everywhere.
void CounterRng::philox(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  philox4x32_10(counter, key, out);
}

double CounterRng::uniform(uint32_t image, uint32_t scale, uint32_t position, uint32_t draw) const {
  return counter_uniform(seed, image, scale, position, draw);
}

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Reused by every row a thread samples: a row is one token of one image, and allocating per row
// cost more than the filtering. Survivors are kept dense, in token order, so that the passes
// after top-k neither branch on -inf nor touch the tokens it removed.
struct RowScratch {
  std::vector<float> picked;   // top-k's candidates: the values of the k-th largest's bucket
  std::vector<int> token;      // [n] survivors' token ids, ascending
  std::vector<float> value;    // [n] their logits
  std::vector<double> weight;  // [n]
  std::vector<int> bucket;     // [n] top-p's value bucket
  std::vector<double> mass;    // [buckets]
  std::vector<int> members;    // positions in `token` of the crossing bucket
};

// floor(t) within [0, buckets - 1]; NaN and -inf (logits of -inf, +inf rows) land in bucket 0
// instead of an undefined conversion.
inline int bucket_index(double t, int buckets) {
  if (!(t > 0)) return 0;
  return t < buckets - 1 ? static_cast<int>(t) : buckets - 1;
}

RowScratch& row_scratch() {
  thread_local RowScratch s;
  return s;
}

// The k-th largest logit. Value buckets (linear between the row's finite minimum and maximum,
// so monotone in the logit) are counted in one pass; the k-th largest lies in the bucket where
// the count from the top reaches k, and only that bucket's values are selected among
// (nth_element over the whole row was a third of a row's time).
float kth_largest(const float* logits, int vocab, int k, RowScratch& s) {
  constexpr int kBuckets = 256;
  float mx = kNegInf, lo = std::numeric_limits<float>::infinity();
  for (int i = 0; i < vocab; ++i) {
    mx = std::max(mx, logits[i]);
    lo = std::min(lo, logits[i] == kNegInf ? std::numeric_limits<float>::infinity() : logits[i]);
  }
  if (!(mx > lo)) return mx;  // one finite value (or none): it is the k-th largest or nothing is
  const double per_unit = kBuckets / static_cast<double>(mx - lo);
  auto bucket_of = [&](float x) { return bucket_index(static_cast<double>(x - lo) * per_unit, kBuckets); };
  int count[kBuckets] = {};
  for (int i = 0; i < vocab; ++i) ++count[bucket_of(logits[i])];
  int bucket = kBuckets - 1, above = 0;  // values in buckets above `bucket`
  while (above + count[bucket] < k) above += count[bucket--];
  s.picked.clear();
  for (int i = 0; i < vocab; ++i)
    if (bucket_of(logits[i]) == bucket) s.picked.push_back(logits[i]);
  const auto nth = s.picked.begin() + (k - 1 - above);
  std::nth_element(s.picked.begin(), nth, s.picked.end(), std::greater<float>());
  return *nth;
}

// Top-k (values below the k-th largest go; ties stay), then the survivors into s.token / s.value.
void top_k_survivors(float* logits, int vocab, int top_k, RowScratch& s) {
  const float kth = top_k > 0 && top_k < vocab ? kth_largest(logits, vocab, top_k, s) : kNegInf;
  s.token.resize(static_cast<size_t>(vocab));
  s.value.resize(static_cast<size_t>(vocab));
  size_t n = 0;
  for (int i = 0; i < vocab; ++i) logits[i] = logits[i] >= kth ? logits[i] : kNegInf;  // vectorises
  for (int i = 0; i < vocab; ++i) {
    s.token[n] = i;  // written always, kept by advancing: no branch on the random survivor pattern
    s.value[n] = logits[i];
    n += logits[i] != kNegInf;
  }
  s.token.resize(n);
  s.value.resize(n);
}

// The reference sorts the survivors ascending (ties by index) and removes from the bottom while
// the cumulative probability stays <= 1 - p, never the largest. Only where that sum crosses 1 - p
// does the order matter: value buckets monotone in the logit hold whole runs of the sorted order,
// so every bucket whose run ends at or below 1 - p goes, every bucket above the crossing stays,
// and only the crossing bucket (a few tokens) is sorted. The sums differ from the sorted walk's
// only in rounding order.
void top_p_survivors(float* logits, double top_p, RowScratch& s) {
  const size_t n = s.token.size();
  if (top_p <= 0 || n <= 1) return;
  float mx = s.value[0], lo = s.value[0];
  for (float x : s.value) {
    mx = std::max(mx, x);
    lo = std::min(lo, x);
  }
  s.weight.resize(n);
  double z = 0;
  for (size_t j = 0; j < n; ++j) z += s.weight[j] = std::exp(static_cast<double>(s.value[j] - mx));
  const int buckets = std::max(1, static_cast<int>(n / 2));
  const double per_unit = mx > lo ? buckets / static_cast<double>(mx - lo) : 0.0;
  s.bucket.resize(n);
  s.mass.assign(static_cast<size_t>(buckets), 0.0);
  for (size_t j = 0; j < n; ++j) {
    // float difference, then a positive factor, then truncation: each step keeps the order.
    const int b = bucket_index(static_cast<double>(s.value[j] - lo) * per_unit, buckets);
    s.bucket[j] = b;
    s.mass[static_cast<size_t>(b)] += s.weight[j] / z;
  }
  const double threshold = 1.0 - top_p;
  double cum = 0;
  int crossing = 0;  // the last bucket holds the largest: the walk ends there at the latest
  while (crossing < buckets - 1 && cum + s.mass[static_cast<size_t>(crossing)] <= threshold)
    cum += s.mass[static_cast<size_t>(crossing++)];
  s.members.clear();
  for (size_t j = 0; j < n; ++j)
    if (s.bucket[j] == crossing) s.members.push_back(static_cast<int>(j));
  std::sort(s.members.begin(), s.members.end(), [&](int a, int b) {
    return s.value[static_cast<size_t>(a)] < s.value[static_cast<size_t>(b)] ||
           (s.value[static_cast<size_t>(a)] == s.value[static_cast<size_t>(b)] && a < b);
  });
  const size_t removable = crossing == buckets - 1 ? s.members.size() - 1 : s.members.size();
  size_t removed_in_crossing = 0;
  while (removed_in_crossing < removable) {
    cum += s.weight[static_cast<size_t>(s.members[removed_in_crossing])] / z;
    if (cum > threshold) break;  // cumulative sums only grow
    s.bucket[static_cast<size_t>(s.members[removed_in_crossing++])] = -1;
  }
  size_t kept = 0;
  for (size_t j = 0; j < n; ++j) {
    const bool keep = s.bucket[j] >= crossing;
    const int t = s.token[j];
    const float x = s.value[j];
    std::memcpy(&logits[t], keep ? &x : &kNegInf, sizeof x);  // a select, not a branch
    s.token[kept] = t;
    s.value[kept] = x;
    kept += keep;
  }
  s.token.resize(kept);
  s.value.resize(kept);
}

void filter_row(float* logits, int vocab, int top_k, double top_p, RowScratch& s) {
  top_k_survivors(logits, vocab, top_k, s);
  top_p_survivors(logits, top_p, s);
}

// softmax(filtered / T) of the survivors, unnormalised, into s.weight; returns the sum.
double weigh_survivors(double temperature, RowScratch& s) {
  float mx = kNegInf;
  for (float x : s.value) mx = std::max(mx, x);
  s.weight.resize(s.value.size());
  double z = 0;
  for (size_t j = 0; j < s.value.size(); ++j)
    z += s.weight[j] = std::exp((static_cast<double>(s.value[j]) - mx) / temperature);
  return z;
}
}  // namespace

void filter_logits(float* logits, int vocab, int top_k, double top_p) {
  filter_row(logits, vocab, top_k, top_p, row_scratch());
}

int sample_token(float* logits, int vocab, const FilterParams& params, double u) {
  RowScratch& s = row_scratch();
  filter_row(logits, vocab, params.top_k, params.top_p, s);
  const double target = u * weigh_survivors(params.temperature, s);
  double cum = 0;
  int last = -1;
  for (size_t j = 0; j < s.token.size(); ++j) {  // inverse CDF in token order
    if (s.weight[j] <= 0) continue;
    cum += s.weight[j];
    last = s.token[j];
    if (cum > target) return last;
  }
  return last < 0 ? 0 : last;  // rounding at u -> 1
}

std::vector<double> sampling_distribution(const float* logits, int vocab, const FilterParams& params) {
  std::vector<float> l(logits, logits + vocab);
  RowScratch& s = row_scratch();
  filter_row(l.data(), vocab, params.top_k, params.top_p, s);
  const double z = weigh_survivors(params.temperature, s);
  std::vector<double> p(static_cast<size_t>(vocab), 0.0);
  for (size_t j = 0; j < s.token.size(); ++j) p[static_cast<size_t>(s.token[j])] = s.weight[j] / z;
  return p;
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
