// The machine's ceilings that the speed figures of issue #5 are judged against: the throughput of
// a bare stream of vdpbf16ps (bf16 dot products, 64 FLOP each), of vpdpbusd (int8, 128 integer
// ops each, reported as FLOP/s) and of vfmadd231ps (f32, 32 FLOP) on zmm registers, of vpdpbusd on
// ymm (64 integer ops; VEX where the CPU has AVX-VNNI, else EVEX), and the DRAM read bandwidth that
// bounds the small-M scales (weights streamed). No kernel can beat these; run with 1 and 2 threads:
//   build/varcode_microbench --benchmark_filter=Peak --benchmark_counters_tabular=true
// Arg = threads, each running the same stream; the counters are the machine's total.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "kernels/cpu/gemm_bf16.hpp"
#include "kernels/cpu/gemm_int8.hpp"

namespace {

#if defined(__x86_64__)
// 12 independent accumulators (latency 4-6 x two pipes), operands in registers: the loop is
// bound by the dot-product units alone. Inline assembly so that no compiler keeps them in memory.
__attribute__((target("avx512f,avx512bf16"))) void bf16_dot_stream(int64_t iters) {
  __asm__ volatile(
      "vpxord %%zmm0,%%zmm0,%%zmm0\n vmovaps %%zmm0,%%zmm1\n vmovaps %%zmm0,%%zmm2\n vmovaps %%zmm0,%%zmm3\n"
      "vmovaps %%zmm0,%%zmm4\n vmovaps %%zmm0,%%zmm5\n vmovaps %%zmm0,%%zmm6\n vmovaps %%zmm0,%%zmm7\n"
      "vmovaps %%zmm0,%%zmm8\n vmovaps %%zmm0,%%zmm9\n vmovaps %%zmm0,%%zmm10\n vmovaps %%zmm0,%%zmm11\n"
      "vmovaps %%zmm0,%%zmm12\n vmovaps %%zmm0,%%zmm13\n"
      "1:\n"
      "vdpbf16ps %%zmm12,%%zmm13,%%zmm0\n vdpbf16ps %%zmm12,%%zmm13,%%zmm1\n vdpbf16ps %%zmm12,%%zmm13,%%zmm2\n"
      "vdpbf16ps %%zmm12,%%zmm13,%%zmm3\n vdpbf16ps %%zmm12,%%zmm13,%%zmm4\n vdpbf16ps %%zmm12,%%zmm13,%%zmm5\n"
      "vdpbf16ps %%zmm12,%%zmm13,%%zmm6\n vdpbf16ps %%zmm12,%%zmm13,%%zmm7\n vdpbf16ps %%zmm12,%%zmm13,%%zmm8\n"
      "vdpbf16ps %%zmm12,%%zmm13,%%zmm9\n vdpbf16ps %%zmm12,%%zmm13,%%zmm10\n vdpbf16ps %%zmm12,%%zmm13,%%zmm11\n"
      "dec %0\n jnz 1b\n"
      : "+r"(iters)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}

__attribute__((target("avx512f"))) void f32_fma_stream(int64_t iters) {
  __asm__ volatile(
      "vpxord %%zmm0,%%zmm0,%%zmm0\n vmovaps %%zmm0,%%zmm1\n vmovaps %%zmm0,%%zmm2\n vmovaps %%zmm0,%%zmm3\n"
      "vmovaps %%zmm0,%%zmm4\n vmovaps %%zmm0,%%zmm5\n vmovaps %%zmm0,%%zmm6\n vmovaps %%zmm0,%%zmm7\n"
      "vmovaps %%zmm0,%%zmm8\n vmovaps %%zmm0,%%zmm9\n vmovaps %%zmm0,%%zmm10\n vmovaps %%zmm0,%%zmm11\n"
      "vmovaps %%zmm0,%%zmm12\n vmovaps %%zmm0,%%zmm13\n"
      "1:\n"
      "vfmadd231ps %%zmm12,%%zmm13,%%zmm0\n vfmadd231ps %%zmm12,%%zmm13,%%zmm1\n vfmadd231ps %%zmm12,%%zmm13,%%zmm2\n"
      "vfmadd231ps %%zmm12,%%zmm13,%%zmm3\n vfmadd231ps %%zmm12,%%zmm13,%%zmm4\n vfmadd231ps %%zmm12,%%zmm13,%%zmm5\n"
      "vfmadd231ps %%zmm12,%%zmm13,%%zmm6\n vfmadd231ps %%zmm12,%%zmm13,%%zmm7\n vfmadd231ps %%zmm12,%%zmm13,%%zmm8\n"
      "vfmadd231ps %%zmm12,%%zmm13,%%zmm9\n vfmadd231ps %%zmm12,%%zmm13,%%zmm10\n vfmadd231ps %%zmm12,%%zmm13,%%zmm11\n"
      "dec %0\n jnz 1b\n"
      : "+r"(iters)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}

// vpdpbusd: 16 lanes x 4 u8 x s8 products = 64 multiply-adds, 128 integer ops (the int8 GEMM's
// instruction, gemm_int8.cpp), counted like the FLOP above so the two compare directly.
__attribute__((target("avx512f,avx512vnni"))) void int8_dot_stream(int64_t iters) {
  __asm__ volatile(
      "vpxord %%zmm0,%%zmm0,%%zmm0\n vmovaps %%zmm0,%%zmm1\n vmovaps %%zmm0,%%zmm2\n vmovaps %%zmm0,%%zmm3\n"
      "vmovaps %%zmm0,%%zmm4\n vmovaps %%zmm0,%%zmm5\n vmovaps %%zmm0,%%zmm6\n vmovaps %%zmm0,%%zmm7\n"
      "vmovaps %%zmm0,%%zmm8\n vmovaps %%zmm0,%%zmm9\n vmovaps %%zmm0,%%zmm10\n vmovaps %%zmm0,%%zmm11\n"
      "vmovaps %%zmm0,%%zmm12\n vmovaps %%zmm0,%%zmm13\n"
      "1:\n"
      "vpdpbusd %%zmm12,%%zmm13,%%zmm0\n vpdpbusd %%zmm12,%%zmm13,%%zmm1\n vpdpbusd %%zmm12,%%zmm13,%%zmm2\n"
      "vpdpbusd %%zmm12,%%zmm13,%%zmm3\n vpdpbusd %%zmm12,%%zmm13,%%zmm4\n vpdpbusd %%zmm12,%%zmm13,%%zmm5\n"
      "vpdpbusd %%zmm12,%%zmm13,%%zmm6\n vpdpbusd %%zmm12,%%zmm13,%%zmm7\n vpdpbusd %%zmm12,%%zmm13,%%zmm8\n"
      "vpdpbusd %%zmm12,%%zmm13,%%zmm9\n vpdpbusd %%zmm12,%%zmm13,%%zmm10\n vpdpbusd %%zmm12,%%zmm13,%%zmm11\n"
      "dec %0\n jnz 1b\n"
      : "+r"(iters)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "cc");
}

// vpdpbusd on ymm (8 lanes: 32 multiply-adds, 64 integer ops), the instruction of the 256-bit int8
// kernel (int8_micro_ymm.hpp), in the encoding given: "{vex} " (AVX-VNNI) or "{evex} " (AVX512-VNNI +
// AVX512VL). 12 accumulators as above; ymm0-13 in either encoding, as the kernel.
#define VARCODE_YMM_DOT_STREAM(name, enc)                                                                       \
  void name(int64_t iters) {                                                                                    \
    __asm__ volatile(                                                                                           \
        "vpxor %%xmm0,%%xmm0,%%xmm0\n vmovaps %%ymm0,%%ymm1\n vmovaps %%ymm0,%%ymm2\n vmovaps %%ymm0,%%ymm3\n"  \
        "vmovaps %%ymm0,%%ymm4\n vmovaps %%ymm0,%%ymm5\n vmovaps %%ymm0,%%ymm6\n vmovaps %%ymm0,%%ymm7\n"       \
        "vmovaps %%ymm0,%%ymm8\n vmovaps %%ymm0,%%ymm9\n vmovaps %%ymm0,%%ymm10\n vmovaps %%ymm0,%%ymm11\n"     \
        "vmovaps %%ymm0,%%ymm12\n vmovaps %%ymm0,%%ymm13\n"                                                     \
        "1:\n" enc "vpdpbusd %%ymm12,%%ymm13,%%ymm0\n" enc "vpdpbusd %%ymm12,%%ymm13,%%ymm1\n" enc              \
        "vpdpbusd %%ymm12,%%ymm13,%%ymm2\n" enc "vpdpbusd %%ymm12,%%ymm13,%%ymm3\n" enc                         \
        "vpdpbusd %%ymm12,%%ymm13,%%ymm4\n" enc "vpdpbusd %%ymm12,%%ymm13,%%ymm5\n" enc                         \
        "vpdpbusd %%ymm12,%%ymm13,%%ymm6\n" enc "vpdpbusd %%ymm12,%%ymm13,%%ymm7\n" enc                         \
        "vpdpbusd %%ymm12,%%ymm13,%%ymm8\n" enc "vpdpbusd %%ymm12,%%ymm13,%%ymm9\n" enc                         \
        "vpdpbusd %%ymm12,%%ymm13,%%ymm10\n" enc                                                                \
        "vpdpbusd %%ymm12,%%ymm13,%%ymm11\n"                                                                    \
        "dec %0\n jnz 1b\n vzeroupper\n"                                                                        \
        : "+r"(iters)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
          "xmm11", "xmm12", "xmm13", "cc");                                                                     \
  }
__attribute__((target("avx2"))) VARCODE_YMM_DOT_STREAM(int8_ymm_vex_dot_stream, "%{vex%} ")
    __attribute__((target("avx2"))) VARCODE_YMM_DOT_STREAM(int8_ymm_evex_dot_stream, "%{evex%} ")
#undef VARCODE_YMM_DOT_STREAM

        constexpr int64_t kIters = 1 << 24;  // x 12 instructions per benchmark iteration: ~60 ms, so that
                                             // thread start-up and placement do not count

// Runs fn on `threads` threads at once (the calling one included) and waits for all.
template <typename Fn>
void on_threads(int64_t threads, Fn fn) {
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back([&fn, t] { fn(t); });
  fn(0);
  for (auto& th : pool) th.join();
}

void BM_PeakBf16Dot(benchmark::State& state) {
  if (!varcode::kernels::cpu::Bf16Gemm::supported()) {
    state.SkipWithError("CPU without AVX512-BF16");
    return;
  }
  for (auto _ : state) on_threads(state.range(0), [](int64_t) { bf16_dot_stream(kIters); });
  state.counters["FLOP/s"] = benchmark::Counter(static_cast<double>(state.range(0) * kIters * 12 * 64),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PeakBf16Dot)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_PeakF32Fma(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("CPU without AVX-512F");
    return;
  }
  for (auto _ : state) on_threads(state.range(0), [](int64_t) { f32_fma_stream(kIters); });
  state.counters["FLOP/s"] = benchmark::Counter(static_cast<double>(state.range(0) * kIters * 12 * 32),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PeakF32Fma)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_PeakInt8Dot(benchmark::State& state) {
  if (!varcode::kernels::cpu::int8_isa_runs_here(varcode::kernels::cpu::Int8Isa::avx512vnni)) {
    state.SkipWithError("CPU without AVX512-VNNI");
    return;
  }
  for (auto _ : state) on_threads(state.range(0), [](int64_t) { int8_dot_stream(kIters); });
  state.counters["FLOP/s"] = benchmark::Counter(static_cast<double>(state.range(0) * kIters * 12 * 128),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PeakInt8Dot)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

// Args {threads, vex (1: the AVX-VNNI encoding, 0: the EVEX one of AVX512-VNNI + AVX512VL)}.
void BM_PeakInt8DotYmm(benchmark::State& state) {
  using varcode::kernels::cpu::Int8Isa;
  const bool vex = state.range(1) != 0;
  if (!varcode::kernels::cpu::int8_isa_runs_here(vex ? Int8Isa::avxvnni : Int8Isa::avx512vnni_ymm)) {
    state.SkipWithError(vex ? "CPU without AVX-VNNI" : "CPU without AVX512-VNNI");
    return;
  }
  for (auto _ : state)
    on_threads(state.range(0),
               [vex](int64_t) { vex ? int8_ymm_vex_dot_stream(kIters) : int8_ymm_evex_dot_stream(kIters); });
  state.counters["FLOP/s"] = benchmark::Counter(static_cast<double>(state.range(0) * kIters * 12 * 64),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PeakInt8DotYmm)->ArgNames({"threads", "vex"})->ArgsProduct({{1, 2}, {1, 0}})->UseRealTime();
#endif

// Each thread reads its own 1 GiB (beyond any cache), as the weights of a layer are read.
void BM_PeakReadBandwidth(benchmark::State& state) {
  constexpr size_t kBytes = size_t{1} << 30;
  const int64_t threads = state.range(0);
  std::unique_ptr<uint64_t, void (*)(void*)> buf(static_cast<uint64_t*>(std::aligned_alloc(64, kBytes * threads)),
                                                 std::free);
  std::memset(buf.get(), 1, kBytes * threads);
  for (auto _ : state)
    on_threads(threads, [&](int64_t t) {
      const uint64_t* p = buf.get() + t * (kBytes / 8);
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t i = 0; i < kBytes / 8; i += 32) {  // one word per 64-byte line: every line is fetched
        s0 += p[i];
        s1 += p[i + 8];
        s2 += p[i + 16];
        s3 += p[i + 24];
      }
      benchmark::DoNotOptimize(s0 + s1 + s2 + s3);
    });
  state.counters["B/s"] =
      benchmark::Counter(static_cast<double>(kBytes * threads), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PeakReadBandwidth)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
