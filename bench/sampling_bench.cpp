// One token's sampling (top-k, top-p, temperature, the draw) against the naive reference that
// sorts every survivor: VAR's setting (V 4096, top-k 900) and CoDe's on the shipped models
// (V 1024, top-k 600), top-p 0.96. Logits are Gaussian with the spread of a trained head.
//   build/varcode_microbench --benchmark_filter=Sample
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/cpu/sampling.hpp"
#include "kernels/reference/sampling.hpp"

namespace {

using namespace varcode::kernels::cpu;

std::vector<float> logits_rows(int rows, int vocab) {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 2.5f);
  std::vector<float> l(static_cast<size_t>(rows) * vocab);  // [rows, V]
  for (float& x : l) x = normal(gen);
  return l;
}

// Args: {vocab, top_k, reference (0 = the engine's sampler, 1 = the naive one)}.
void BM_SampleToken(benchmark::State& state) {
  const int vocab = static_cast<int>(state.range(0)), rows = 64;
  const FilterParams fp{static_cast<int>(state.range(1)), 0.96, 1.0};
  const bool reference = state.range(2) != 0;
  const std::vector<float> source = logits_rows(rows, vocab);  // [rows, V]
  std::vector<float> row(static_cast<size_t>(vocab));
  int r = 0;
  for (auto _ : state) {
    std::copy(source.begin() + static_cast<ptrdiff_t>(r) * vocab,
              source.begin() + static_cast<ptrdiff_t>(r + 1) * vocab, row.begin());
    const double u = (r + 0.5) / rows;
    benchmark::DoNotOptimize(reference ? sample_token_reference(row.data(), vocab, fp, u)
                                       : sample_token(row.data(), vocab, fp, u));
    r = (r + 1) % rows;
  }
  state.SetLabel(reference ? "naive reference" : "engine");
}
BENCHMARK(BM_SampleToken)->Args({1024, 600, 0})->Args({1024, 600, 1})->Args({4096, 900, 0})->Args({4096, 900, 1});

}  // namespace
