// Linear::forward at the VAR transformer's shapes, oneDNN versus the hand-written kernels (issue
// #5). Per depth (d16: C = 1024, d30: C = 1920) the block's layers:
//   - LinearBf16: bf16 weights, oneDNN vs AVX512-BF16, the five layers at the row counts of the
//     ten scales for batch 1;
//   - LinearF32: f32 weights, oneDNN vs AVX-512F, qkv / proj / fc1 / fc2 at row counts from one
//     scale of a guided batch (2 rows) to a whole guided sequence (1360).
//   - LinearInt8: the same weights quantised to int8 (int8_isa()'s kernel) vs bf16 (AVX512-BF16), qkv /
//     proj / fc1 / fc2 at guided batch-1 row counts (2 = scale 0 ... 512 = the 16x16 scale).
// A/B on a shared machine: run interleaved and read medians (OMP_NUM_THREADS=1 for one thread),
//   build/varcode_microbench --benchmark_filter=LinearF32 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// A layer's weights stay cache-warm between iterations here; in the model they come from DRAM,
// which matters at the small row counts (memory-bound) for both backends alike.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "kernels/cpu/gemm.hpp"
#include "kernels/cpu/gemm_bf16.hpp"
#include "kernels/cpu/gemm_f32.hpp"
#include "kernels/cpu/gemm_int8.hpp"

namespace {

using namespace varcode;
using kernels::cpu::Epilogue;
using kernels::cpu::GemmBackend;
using kernels::cpu::Linear;

struct LayerShape {
  const char* name;
  int64_t n, k;  // weight [N, K]
  Epilogue ep;
};
// The transformer block's linears for width C.
LayerShape layer(int which, int64_t c) {
  switch (which) {
    case 0:
      return {"qkv", 3 * c, c, Epilogue::none};
    case 1:
      return {"proj", c, c, Epilogue::none};
    case 2:
      return {"fc1", 4 * c, c, Epilogue::gelu_tanh};
    case 3:
      return {"fc2", c, 4 * c, Epilogue::none};
    default:
      return {"adaLN", 6 * c, c, Epilogue::none};
  }
}

const Linear& cached_linear(GemmBackend backend, DType dtype, int which, int64_t c);

// int8 (the kernel of int8_isa(): VARCODE_INT8_ISA=avx512vnni-ymm times the 256-bit kernel on an
// AVX512-VNNI CPU) against bf16 (avx512bf16) at the bf16 benchmark's shapes (issue #17): the same
// weights, quantised per channel. Args: {int8 (0 = bf16, 1 = int8), C, layer, M}.
void BM_LinearInt8(benchmark::State& state) {
  const bool int8 = state.range(0) != 0;
  if (int8 ? !kernels::cpu::Int8Gemm::supported() : !kernels::cpu::Bf16Gemm::supported()) {
    state.SkipWithError(int8 ? "CPU without AVX512-VNNI or AVX-VNNI" : "CPU without AVX512-BF16");
    return;
  }
  const int64_t c = state.range(1), m = state.range(3);
  const int which = static_cast<int>(state.range(2));
  const LayerShape s = layer(which, c);
  const Linear& lin = int8 ? cached_linear(GemmBackend::int8, DType::i8, which, c)
                           : cached_linear(GemmBackend::avx512bf16, DType::bf16, which, c);
  std::vector<float> x(static_cast<size_t>(m * s.k)), y(static_cast<size_t>(m * s.n));  // [M, K], [M, N]
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 101) / 50.0f - 1.0f;
  lin.forward(x.data(), m, y.data(), s.ep);
  for (auto _ : state) {
    lin.forward(x.data(), m, y.data(), s.ep);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(static_cast<double>(2 * m * s.n * s.k), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(int8 ? kernels::cpu::int8_isa_name(kernels::cpu::int8_isa()) : "avx512bf16") + " " +
                 s.name);
}

const Linear& cached_linear(GemmBackend backend, DType dtype, int which, int64_t c) {
  static std::map<std::tuple<int, int, int, int64_t>, std::unique_ptr<Linear>> cache;
  auto key = std::make_tuple(static_cast<int>(backend), static_cast<int>(dtype), which, c);
  auto it = cache.find(key);
  if (it == cache.end()) {
    const LayerShape s = layer(which, c);
    Tensor w = Tensor::empty(DType::f32, {s.n, s.k});  // [N, K]
    Tensor b = Tensor::empty(DType::f32, {s.n});       // [N]
    for (int64_t i = 0; i < w.numel(); ++i)
      w.data<float>()[i] = static_cast<float>((i * 7919) % 2003) / 20030.0f - 0.05f;
    for (int64_t i = 0; i < s.n; ++i) b.data<float>()[i] = static_cast<float>(i % 17) / 17.0f;
    it = cache
             .emplace(key, dtype == DType::i8 ? std::make_unique<Linear>(Linear::quantize_int8(w, b))
                                              : std::make_unique<Linear>(w.to(dtype), b, backend))
             .first;
  }
  return *it->second;
}

// Args: {backend (0 = oneDNN, 1 = the hand-written kernel for dtype), C, layer (0..4), M}.
void run_linear(benchmark::State& state, DType dtype) {
  const bool hand = state.range(0) != 0;
  const auto backend = !hand                  ? GemmBackend::onednn
                       : dtype == DType::bf16 ? GemmBackend::avx512bf16
                                              : GemmBackend::avx512f32;
  if (backend == GemmBackend::avx512bf16 && !kernels::cpu::Bf16Gemm::supported()) {
    state.SkipWithError("CPU without AVX512-BF16");
    return;
  }
  if (backend == GemmBackend::avx512f32 && !kernels::cpu::F32Gemm::supported()) {
    state.SkipWithError("CPU without AVX-512F");
    return;
  }
  const int64_t c = state.range(1), m = state.range(3);
  const int which = static_cast<int>(state.range(2));
  const LayerShape s = layer(which, c);
  const Linear& lin = cached_linear(backend, dtype, which, c);
  std::vector<float> x(static_cast<size_t>(m * s.k)), y(static_cast<size_t>(m * s.n));  // [M, K], [M, N]
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 101) / 50.0f - 1.0f;
  lin.forward(x.data(), m, y.data(), s.ep);  // oneDNN's primitive for this M created outside the timing
  for (auto _ : state) {
    lin.forward(x.data(), m, y.data(), s.ep);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(static_cast<double>(2 * m * s.n * s.k), benchmark::Counter::kIsIterationInvariantRate);
  const char* name = !hand ? "onednn " : dtype == DType::bf16 ? "avx512bf16 " : "avx512f32 ";
  state.SetLabel(std::string(name) + s.name);
}

void BM_LinearBf16(benchmark::State& state) { run_linear(state, DType::bf16); }
void BM_LinearF32(benchmark::State& state) { run_linear(state, DType::f32); }

void bf16_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"avx", "C", "layer", "M"});
  for (int64_t c : {1024, 1920})
    for (int which = 0; which < 5; ++which)
      for (int64_t m : {1, 4, 9, 16, 25, 36, 64, 100, 169, 256, 400, 1600})
        for (int backend = 0; backend < 2; ++backend) b->Args({backend, c, which, m});
}
void f32_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"avx", "C", "layer", "M"});
  for (int64_t c : {1024, 1920})
    for (int which = 0; which < 4; ++which)
      for (int64_t m : {2, 8, 32, 128, 338, 512, 1360})
        for (int backend = 0; backend < 2; ++backend) b->Args({backend, c, which, m});
}
BENCHMARK(BM_LinearBf16)->Apply(bf16_args)->MinTime(0.05)->UseRealTime()->Unit(benchmark::kMicrosecond);
void int8_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"int8", "C", "layer", "M"});
  for (int64_t c : {1024, 1920})
    for (int which = 0; which < 4; ++which)
      for (int64_t m : {2, 8, 32, 128, 338, 512})
        for (int int8 = 0; int8 < 2; ++int8) b->Args({int8, c, which, m});
}
BENCHMARK(BM_LinearInt8)->Apply(int8_args)->MinTime(0.05)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LinearF32)->Apply(f32_args)->MinTime(0.05)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
