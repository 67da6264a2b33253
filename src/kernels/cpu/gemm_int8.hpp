// int8 GEMM for the int8 linear layers: y = dequant(q(x) W_q^T) + b (+ GELU-tanh), with s8
// weights quantised per output channel (symmetric), u8 activations quantised per row at run time
// (asymmetric: a scale and a zero point), int32 accumulation (vpdpbusd) and the dequantisation,
// bias and GELU in the epilogue. Used by Linear for int8 weights on CPUs with AVX512-VNNI or
// AVX-VNNI.
//
// Quantisation, exactly (tests rely on these formulas; the file format in README.md too):
//   weights, row n of W [N, K]:  s_w[n] = max_k |w[n, k]| / 127 (1 for an all-zero row),
//                                q[n, k] = clamp(nearbyint(w[n, k] / s_w[n]), -127, 127)
//   activations, row m of x:     lo = min(0, min_k x), hi = max(0, max_k x),
//                                s_x[m] = (hi - lo) / 255 (1 for an all-zero row), inv = 1 / s_x[m],
//                                z[m] = nearbyint(-lo * inv), a[m, k] = clamp(nearbyint(x * inv) + z, 0, 255)
//   output:                      acc = sum_k a[m, k] q[n, k] - z[m] sum_k q[n, k]   (int32, exact)
//                                y = fma(float(acc), s_x[m] * s_w[n], b[n]), then GELU-tanh if asked
// Why u8 with a zero point rather than s8 with +128: vpdpbusd multiplies u8 by s8 either way and
// both need the sum_k q[n, k] compensation, but an asymmetric range spends all 256 codes on the
// row's actual [min, max]. The fc2 input is a GELU output (min about -0.17, max several units):
// a symmetric s8 range would leave almost half of its codes unused there. The zero point costs
// one vpmulld per accumulator per micro-tile (not per k step).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace varcode::kernels::cpu {

// The int8 kernels, by the vpdpbusd they run:
//   avx512vnni:     zmm, 6 x 64 micro-tiles (int8_micro.hpp); AVX512-VNNI with AVX512BW/VL/DQ.
//   avxvnni:        ymm, 6 x 16 micro-tiles (int8_micro_ymm.hpp), the VEX form of AVX-VNNI, for
//                   CPUs that have it without AVX512-VNNI (Intel client CPUs from Alder Lake); the
//                   kernel is AVX2 otherwise.
//   avx512vnni_ymm: the avxvnni kernel's very code with the EVEX form of the same instruction
//                   (AVX512-VNNI + AVX512VL), only on request: it runs and times the 256-bit
//                   kernel on CPUs without AVX-VNNI, such as Zen 4.
// Both ymm kernels quantise the activations with AVX2, the zmm kernel with AVX-512 (same codes).
enum class Int8Isa { none, avx512vnni, avxvnni, avx512vnni_ymm };

// What `--dtype int8` runs on this CPU (and OS): avx512vnni where it runs, else avxvnni, else
// none. VARCODE_INT8_ISA=auto|none|avx512vnni|avxvnni|avx512vnni-ymm overrides that: none
// pretends there is no VNNI (to check the refusal path on any machine); a kernel the CPU cannot
// run is an error.
Int8Isa int8_isa();
// True when this CPU (and OS) has the instructions of `isa` (none: always).
bool int8_isa_runs_here(Int8Isa isa);
// "avx512vnni", "avxvnni", "avx512vnni-ymm" or "none" (VARCODE_INT8_ISA's spelling; kernel_path).
const char* int8_isa_name(Int8Isa isa);
// Empty when int8 runs here, else the message that `--dtype int8` is refused with.
std::string int8_unsupported_reason(Int8Isa isa = int8_isa());

// Per-output-channel symmetric quantisation of w [N, K] f32 -> q [N, K] s8, scale [N] (formulas
// above).
void quantize_weights_int8(const float* w, int64_t n, int64_t k, int8_t* q, float* scale);

// Per-row asymmetric quantisation of x [M, K] f32 -> a [M, lda] u8 (the first K of each row),
// scale [M], zero [M] (formulas above), with the instructions of `isa`'s kernel (AVX-512 for
// avx512vnni, AVX2 for the ymm kernels, scalar for none): the same results as the formulas on
// every path.
void quantize_rows_u8(const float* x, int64_t m, int64_t k, uint8_t* a, int64_t lda, float* scale, int32_t* zero,
                      Int8Isa isa = int8_isa());

class Int8Gemm {
 public:
  // True when the kernels run on this CPU (int8_isa() != none).
  static bool supported();

  // q [N, K] s8 (PyTorch's [out, in], quantised as above) and its scale [N], packed once; the
  // sources are not kept. `isa`: the kernel that runs it (tests pick each one the CPU runs); one
  // the CPU cannot run, or none, throws. The packed layout is the same for every kernel.
  Int8Gemm(const int8_t* q, const float* scale, int64_t n, int64_t k, Int8Isa isa = int8_isa());
  ~Int8Gemm();
  Int8Gemm(const Int8Gemm&) = delete;
  Int8Gemm& operator=(const Int8Gemm&) = delete;

  // x [M, K] f32 -> y [M, N] f32 (y may not alias x); bias [N] f32 or null; gelu applies
  // GELU-tanh after the bias. Threads: OpenMP over the 64-column panels (rows too when N is
  // narrow), as the bf16 GEMM.
  void forward(const float* x, int64_t m, const float* bias, float* y, bool gelu) const;

  // Tests: the bare int32 products acc [M, N] = a [M, K] (u8, rows lda bytes apart) x q^T, through
  // the same blocking and micro-kernels as forward().
  void forward_raw(const uint8_t* a, int64_t lda, int64_t m, int32_t* acc) const;

  Int8Isa isa() const { return isa_; }
  size_t packed_bytes() const { return packed_bytes_ + 2 * sizeof(float) * static_cast<size_t>(n_pad_); }

 private:
  Int8Isa isa_ = Int8Isa::none;
  int64_t n_ = 0, k_ = 0;
  int64_t kq_ = 0;     // K rounded up to a multiple of 4: vpdpbusd consumes K in quads
  int64_t n_pad_ = 0;  // N rounded up to 16
  size_t packed_bytes_ = 0;
  std::unique_ptr<int8_t, void (*)(void*)> packed_;  // [ceil(N/64)] panels of [K/4][<=64][4]
  std::unique_ptr<int32_t[]> colsum_;                // [n_pad] sum over K of each column's q
  std::unique_ptr<float[]> scale_;                   // [n_pad] s_w (0 in the padding)

  // a [M, lda] u8 with per-row scale/zero (null for raw) -> c [M, N] (f32, or int32 when raw).
  void run(const uint8_t* a, int64_t lda, int64_t m, const float* row_scale, const int32_t* row_zero, const float* bias,
           bool gelu, bool raw, float* c) const;
};

}  // namespace varcode::kernels::cpu
