// VQ-VAE decode timing at the official size (ch = 160, random weights) in f32 and bf16 at batch 1
// and 4 (counter s/image), and the decoder's convolutions alone with NCHW activations versus the
// layout oneDNN picks itself (format any) and NHWC, f32 and bf16 (the ceiling a decode can reach).
//   build/varcode_microbench --benchmark_filter=Vqvae
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "api/random_checkpoint.hpp"
#include "kernels/cpu/dnnl_context.hpp"
#include "model/vqvae.hpp"

namespace {

using namespace varcode;

const model::Vqvae& official_size_decoder(DType compute) {
  static const io::Checkpoint ck = model::random_vqvae_checkpoint({160, {1, 1, 2, 2, 4}, 2, 4096, 32, false, 1});
  static std::map<DType, model::Vqvae> loaded;
  auto it = loaded.find(compute);
  if (it == loaded.end()) it = loaded.emplace(compute, model::Vqvae::load(ck, compute)).first;
  return it->second;
}

// Args: {bf16 (0 = f32, 1 = bf16), batch}.
void BM_VqvaeDecode256(benchmark::State& state) {
  const DType compute = state.range(0) ? DType::bf16 : DType::f32;
  const int batch = static_cast<int>(state.range(1));
  const model::Vqvae& vae = official_size_decoder(compute);
  Tensor f_hat = Tensor::zeros(DType::f32, {batch, 32, 16, 16});  // [B, 32, 16, 16]
  for (int i = 0; i < f_hat.numel(); ++i) f_hat.data<float>()[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  vae.fhat_to_img(f_hat);  // primitives created, weights reordered and buffers pooled outside the timing
  for (auto _ : state) benchmark::DoNotOptimize(vae.fhat_to_img(f_hat));
  state.counters["s/image"] = benchmark::Counter(batch, benchmark::Counter::kIsIterationInvariantRate |
                                                            benchmark::Counter::kInvert);
  state.SetLabel(dtype_name(compute));
}
BENCHMARK(BM_VqvaeDecode256)
    ->ArgNames({"bf16", "batch"})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({0, 4})
    ->Args({1, 4})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

// The 3x3 / 1x1 convolutions of one ch=160 decode at 256 px: {in, out, side, kernel, count}.
struct ConvShape {
  int in, out, side, k, count;
};
std::vector<ConvShape> decoder_convs() {
  return {
      {32, 32, 16, 3, 1},    {32, 640, 16, 3, 1},                          // post_quant_conv, conv_in
      {640, 640, 16, 3, 4},  {640, 1920, 16, 1, 2}, {640, 640, 16, 1, 2},  // mid
      {640, 640, 16, 3, 6},  {640, 1920, 16, 1, 3}, {640, 640, 16, 1, 3},  // level 4 (+ attn)
      {640, 640, 32, 3, 1},                                                // upsample conv
      {640, 320, 32, 3, 1},  {320, 320, 32, 3, 5},  {640, 320, 32, 1, 1},  // level 3
      {320, 320, 64, 3, 1},  {320, 320, 64, 3, 6},                         // upsample, level 2
      {320, 320, 128, 3, 1}, {320, 160, 128, 3, 1}, {160, 160, 128, 3, 5}, {320, 160, 128, 1, 1},  // level 1
      {160, 160, 256, 3, 1}, {160, 160, 256, 3, 6}, {160, 3, 256, 3, 1},                           // level 0, conv_out
  };
}

void BM_VqvaeDecoderConvs(benchmark::State& state) {
  using dnnl::memory;
  const int layout = static_cast<int>(state.range(0));  // 0 NCHW, 1 oneDNN's choice, 2 NHWC, 3 NHWC bf16
  const auto dt = layout == 3 ? memory::data_type::bf16 : memory::data_type::f32;
  const auto& eng = kernels::cpu::dnnl_engine();
  auto& stream = kernels::cpu::dnnl_stream();
  struct Layer {
    dnnl::convolution_forward conv;
    memory src, w, b, dst;
    int count;
  };
  std::vector<Layer> layers;
  double flops = 0;
  for (const ConvShape& s : decoder_convs()) {
    const auto act = layout == 1   ? memory::format_tag::any
                     : layout >= 2 ? memory::format_tag::nhwc
                                   : memory::format_tag::nchw;
    memory::desc src_md({1, s.in, s.side, s.side}, dt, act);
    memory::desc dst_md({1, s.out, s.side, s.side}, dt, act);
    memory::desc w_md({s.out, s.in, s.k, s.k}, dt, memory::format_tag::any);
    memory::desc b_md({s.out}, memory::data_type::f32, memory::format_tag::x);
    const int p = s.k / 2;
    dnnl::convolution_forward::primitive_desc pd({dnnl::prop_kind::forward_inference,
                                                  dnnl::algorithm::convolution_direct,
                                                  src_md,
                                                  w_md,
                                                  b_md,
                                                  dst_md,
                                                  {1, 1},
                                                  {p, p},
                                                  {p, p}},
                                                 eng);
    layers.push_back({dnnl::convolution_forward(pd), memory(pd.src_desc(), eng), memory(pd.weights_desc(), eng),
                      memory(pd.bias_desc(), eng), memory(pd.dst_desc(), eng), s.count});
    flops += 2.0 * s.in * s.out * s.k * s.k * s.side * s.side * s.count;
  }
  for (auto& l : layers)  // touch every buffer once (0x3c23 is about 0.01 in bf16 and 0.01f's top half)
    for (memory* m : {&l.src, &l.w, &l.b, &l.dst}) {
      auto* p = static_cast<uint16_t*>(m->get_data_handle());
      for (size_t i = 0; i < m->get_desc().get_size() / sizeof(uint16_t); ++i) p[i] = 0x3c23;
    }
  for (auto _ : state) {
    for (auto& l : layers)
      for (int i = 0; i < l.count; ++i)
        l.conv.execute(stream,
                       {{DNNL_ARG_SRC, l.src}, {DNNL_ARG_WEIGHTS, l.w}, {DNNL_ARG_BIAS, l.b}, {DNNL_ARG_DST, l.dst}});
    stream.wait();
  }
  state.counters["GFLOP"] = flops / 1e9;
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(layout == 1   ? "activations: oneDNN's choice (any)"
                 : layout == 2 ? "activations: NHWC"
                 : layout == 3 ? "activations: NHWC bf16"
                               : "activations: NCHW");
}
BENCHMARK(BM_VqvaeDecoderConvs)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
