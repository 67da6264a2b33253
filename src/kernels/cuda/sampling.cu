// The sampler and the codebook lookups on the GPU, with the CPU sampler's semantics
// (kernels/cpu/sampling.cpp, cpu_backend.cpp) and its random draws: the uniforms come from the same
// Philox counters through the same header (kernels/philox.hpp), so a token differs from the CPU's
// only where the uniform lands within double rounding of a CDF boundary (the sums run in another
// order). Every decision the CPU makes in double (top-p's cumulative sum, the inverse CDF, the
// Gumbel-softmax weights) is made in double here too; where the CPU multiplies then adds, the
// _rn intrinsics keep nvcc from fusing the two into one FMA, so each term is rounded as there.
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_context.hpp"
#include "kernels/philox.hpp"

namespace varcode::kernels::cuda {

namespace {

struct CudaCodebook final : backend::CodebookWeights {
  Tensor embedding_t;  // [Cvae, V] f32: the nearest-code search reads one channel of consecutive codes
  Tensor emb_sq;       // [V] float64 bits in an i64 tensor (Tensor has no f64): ||e_v||^2 as the CPU sums it
};

constexpr int kThreads = 256;  // every kernel of this file runs blocks of this size
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
  __device__ int operator()(int a, int b) const { return max(a, b); }
};
struct Min {
  __device__ int operator()(int a, int b) const { return min(a, b); }
};

// A reduction over the block; every thread gets the same bits (the butterfly gives each lane of a
// warp the same value, and every thread then combines the warps in the same order).
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* red /* [kWarps] */) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFullMask, v, o));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();  // `red` may still be read from the previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  T r = red[0];
  for (int w = 1; w < kWarps; ++w) r = op(r, red[w]);
  return r;
}

// The exclusive prefix sum of `v` in thread order; `total` gets the sum of all (the last prefix
// plus the last thread's value, added in the same order, so it is never below any prefix).
__device__ double block_exclusive_scan(double v, double* red /* [kWarps] */, double* total) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  double inclusive = v;
  for (int o = 1; o < 32; o <<= 1) {
    const double n = __shfl_up_sync(kFullMask, inclusive, o);
    if (lane >= o) inclusive += n;
  }
  double exclusive = __shfl_up_sync(kFullMask, inclusive, 1);
  if (lane == 0) exclusive = 0;
  __syncthreads();
  if (lane == 31) red[warp] = inclusive;
  __syncthreads();
  double before = 0;
  for (int w = 0; w < warp; ++w) before += red[w];
  double all = 0;
  for (int w = 0; w < kWarps; ++w) all += red[w];
  *total = all;
  return before + exclusive;
}

// A float's bits as an unsigned key of the same order; -0 is keyed as +0 because the CPU's
// comparisons see them equal (its ties then fall to the index, as here).
__device__ inline uint32_t order_key(float x) {
  const uint32_t b = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Ascending bitonic sort of `n` (a power of two) keys in shared memory by the whole block.
__device__ void bitonic_sort(uint64_t* s, int n) {
  for (int k = 2; k <= n; k <<= 1)
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int p = i ^ j;
        if (p > i) {
          const uint64_t x = s[i], y = s[p];
          const bool ascending = (i & k) == 0;
          if ((x > y) == ascending) {
            s[i] = y;
            s[p] = x;
          }
        }
      }
      __syncthreads();
    }
}

struct SampleKernelArgs {
  float* logits;  // [rows, V]
  int64_t l;
  int vocab, sort_n;  // sort_n: the power of two >= V the sort runs over
  const backend::ImageDraw* draws;
  int scale;
  double one_plus_ratio, tau;  // the Gumbel-softmax latent's, computed on the host as the CPU does
  const float* codebook;       // [V, Cvae]
  int cvae;
  int64_t* tokens;
  int64_t token_stride, token_begin;
  float* h;  // [rows, Cvae]
};

constexpr uint64_t kIndexMask = 0xffffffffull;

// One block per (image, position) row: top-k, top-p, temperature, the inverse-CDF draw, and the
// latent (a codebook row, or the Gumbel-softmax mixture). Dynamic shared memory: the sort keys
// [sort_n] (value key << 32 | index, so equal values order by index like the CPU's stable sort),
// reused for the mixture's weights, then the row's logits [V].
__global__ void __launch_bounds__(kThreads) sample_rows(SampleKernelArgs a) {
  extern __shared__ uint64_t sample_smem[];
  uint64_t* keys = sample_smem;                            // [sort_n]
  float* row = reinterpret_cast<float*>(keys + a.sort_n);  // [V]
  __shared__ double red_d[kWarps];
  __shared__ float red_f[kWarps];
  __shared__ int red_i[kWarps];
  __shared__ double part[kWarps][32];

  constexpr float kNegInf = -INFINITY;
  const int tid = threadIdx.x, V = a.vocab;
  const int64_t r = blockIdx.x;  // b * l + t
  const int64_t b = r / a.l, t = r % a.l;
  const backend::ImageDraw& d = a.draws[b];
  float* lg = a.logits + r * V;  // [V]
  for (int i = tid; i < V; i += kThreads) row[i] = lg[i];
  __syncthreads();

  // Threads own contiguous chunks for the two in-order walks (top-p's and the inverse CDF's).
  const int chunk = (V + kThreads - 1) / kThreads;
  const int c0 = min(V, tid * chunk), c1 = min(V, c0 + chunk);

  const bool use_k = (d.top_k > 0) && (d.top_k < V);
  const bool use_p = d.top_p > 0;
  if (use_k || use_p) {  // the same for the whole block: `d` is the row's image's
    for (int i = tid; i < a.sort_n; i += kThreads)
      keys[i] = i < V ? (static_cast<uint64_t>(order_key(row[i])) << 32) | static_cast<uint32_t>(i) : ~0ull;
    __syncthreads();
    bitonic_sort(keys, a.sort_n);
    if (use_k) {
      // The k-th largest keeps every logit >= it (ties kept), as the CPU's nth_element does.
      const float kth = row[keys[V - d.top_k] & kIndexMask];
      __syncthreads();
      for (int i = tid; i < V; i += kThreads)
        if (row[i] < kth) row[i] = kNegInf;
      __syncthreads();
    }
    // Top-k removed the smallest, a prefix of the sorted order, which keeps its order for top-p:
    // those now weigh 0 in the cumulative sum, as if they had left the list.
    const float largest = row[keys[V - 1] & kIndexMask];  // survives top-k
    if (use_p && largest != kNegInf) {
      double zs = 0;
      for (int j = c0; j < c1; ++j) zs += exp(static_cast<double>(row[keys[j] & kIndexMask] - largest));
      const double z = block_reduce(zs, Sum{}, red_d);
      double local = 0;
      for (int j = c0; j < c1; ++j) local += exp(static_cast<double>(row[keys[j] & kIndexMask] - largest)) / z;
      double total = 0;
      double cum = block_exclusive_scan(local, red_d, &total);
      // The CPU removes ascending while the cumulative sum stays <= 1 - p and stops at the first
      // that exceeds it (never the largest): the first crossing decides, whatever rounding does after.
      const double threshold = 1.0 - d.top_p;
      int first = INT_MAX;
      for (int j = c0; j < c1; ++j) {
        cum += exp(static_cast<double>(row[keys[j] & kIndexMask] - largest)) / z;
        if (cum > threshold) {
          first = j;
          break;
        }
      }
      const int stop = min(block_reduce(first, Min{}, red_i), V - 1);
      for (int j = tid; j < stop; j += kThreads) row[keys[j] & kIndexMask] = kNegInf;
      __syncthreads();
    }
    for (int i = tid; i < V; i += kThreads) lg[i] = row[i];  // the seam's logits come back filtered
  }

  // softmax(filtered / T) and the inverse CDF over token order with the uniform of draw 0.
  float mx_local = kNegInf;
  for (int i = tid; i < V; i += kThreads) mx_local = fmaxf(mx_local, row[i]);
  const double mx = block_reduce(mx_local, Max{}, red_f);
  const double temperature = d.temperature[a.scale];
  double local = 0;
  int last_local = -1;
  for (int i = c0; i < c1; ++i) {
    if (row[i] == kNegInf) continue;
    const double w = exp((static_cast<double>(row[i]) - mx) / temperature);
    if (w <= 0) continue;
    local += w;
    last_local = i;
  }
  double z = 0;
  double cum = block_exclusive_scan(local, red_d, &z);
  const uint32_t img = d.image_index, si = static_cast<uint32_t>(a.scale), pos = static_cast<uint32_t>(t);
  const double target = counter_uniform(d.seed, img, si, pos, 0) * z;
  int first = INT_MAX;
  for (int i = c0; i < c1; ++i) {
    if (row[i] == kNegInf) continue;
    const double w = exp((static_cast<double>(row[i]) - mx) / temperature);
    if (w <= 0) continue;
    cum += w;
    if (cum > target) {
      first = i;
      break;
    }
  }
  int token = block_reduce(first, Min{}, red_i);
  if (token == INT_MAX) token = max(block_reduce(last_local, Max{}, red_i), 0);  // rounding at u -> 1
  if (tid == 0) a.tokens[b * a.token_stride + a.token_begin + t] = token;

  const int C = a.cvae;
  float* hr = a.h + r * C;  // [Cvae]
  if (!d.smooth) {
    for (int c = tid; c < C; c += kThreads) hr[c] = a.codebook[static_cast<int64_t>(token) * C + c];
    return;
  }
  // more_smooth: softmax((filtered * (1 + ratio) + gumbel) / tau) @ codebook, the Gumbel noise of
  // code v from draw 1 + v.
  __syncthreads();                              // the keys are dead: their space holds the weights now
  double* w = reinterpret_cast<double*>(keys);  // [V]
  double wmx_local = -INFINITY;
  for (int v = tid; v < V; v += kThreads) {
    if (isinf(row[v])) {
      w[v] = -INFINITY;
      continue;
    }
    const double u = counter_uniform(d.seed, img, si, pos, static_cast<uint32_t>(1 + v));
    const double g = -log(-log(fmax(u, 1e-300)));
    w[v] = __dadd_rn(__dmul_rn(static_cast<double>(row[v]), a.one_plus_ratio), g) / a.tau;
    wmx_local = fmax(wmx_local, w[v]);
  }
  const double wmx = block_reduce(wmx_local, Max{}, red_d);
  double zs = 0;
  for (int v = tid; v < V; v += kThreads) zs += (w[v] = isinf(w[v]) ? 0.0 : exp(w[v] - wmx));
  const double wz = block_reduce(zs, Sum{}, red_d);  // its barriers also publish w[]
  const int warp = tid >> 5, lane = tid & 31;
  for (int cb = 0; cb < C; cb += 32) {
    const int c = cb + lane;
    double acc = 0;
    if (c < C)
      for (int v = warp; v < V; v += kWarps) {
        const double p = w[v] / wz;
        if (p != 0) acc += p * static_cast<double>(a.codebook[static_cast<int64_t>(v) * C + c]);
      }
    part[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && c < C) {
      double s = 0;
      for (int k = 0; k < kWarps; ++k) s += part[k][lane];
      hr[c] = static_cast<float>(s);
    }
    __syncthreads();
  }
}

// h[i] = codebook[idx[i]]; an index outside the codebook gives NaN, never a stray read.
__global__ void embed_rows(const float* codebook, int64_t vocab, int64_t C, const int64_t* idx, int64_t n, float* h) {
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < n * C;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = k / C, c = k % C, v = idx[i];
    h[k] = (v >= 0 && v < vocab) ? codebook[v * C + c] : NAN;
  }
}

// One block per row: argmin_v ||e_v||^2 - 2 z.e_v in double (as the CPU: only genuine near-ties,
// ~1e-16 relative, could come out differently), ties to the lowest index.
__global__ void __launch_bounds__(kThreads)
    nearest_rows(const float* z, const float* emb_t, const double* emb_sq, int V, int C, int64_t* idx) {
  extern __shared__ double zrow[];  // [Cvae]
  const int64_t r = blockIdx.x;
  for (int c = threadIdx.x; c < C; c += kThreads) zrow[c] = z[r * C + c];
  __syncthreads();
  double best = INFINITY;
  int best_v = 0;
  for (int v = threadIdx.x; v < V; v += kThreads) {
    double dot = 0;
    for (int c = 0; c < C; ++c)
      dot = __dadd_rn(dot, __dmul_rn(zrow[c], static_cast<double>(emb_t[static_cast<int64_t>(c) * V + v])));
    const double dist = __dadd_rn(emb_sq[v], -2.0 * dot);
    if (dist < best) {  // ascending v: the first of equal distances stays
      best = dist;
      best_v = v;
    }
  }
  // Lexicographic (distance, index) minimum: ties across threads go to the lowest index too.
  for (int o = 16; o > 0; o >>= 1) {
    const double ob = __shfl_xor_sync(kFullMask, best, o);
    const int ov = __shfl_xor_sync(kFullMask, best_v, o);
    if (ob < best || (ob == best && ov < best_v)) {
      best = ob;
      best_v = ov;
    }
  }
  __shared__ double warp_best[kWarps];
  __shared__ int warp_v[kWarps];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) {
    warp_best[warp] = best;
    warp_v[warp] = best_v;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w)
      if (warp_best[w] < best || (warp_best[w] == best && warp_v[w] < best_v)) {
        best = warp_best[w];
        best_v = warp_v[w];
      }
    idx[r] = best_v;
  }
}

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>(blocks_for(n, kThreads), 1 << 16)); }

void check_codebook(const backend::CodebookWeights& codebook, const char* what) {
  if (!dynamic_cast<const CudaCodebook*>(&codebook))
    throw Error(std::string("internal: cuda ") + what + " given a codebook of another backend");
}

}  // namespace

std::shared_ptr<const backend::CodebookWeights> CudaBackend::codebook_weights(const Tensor& embedding) const {
  enter();
  if (embedding.ndim() != 2 || embedding.dim(0) <= 0 || embedding.dim(1) <= 0)
    throw Error("codebook: the embedding must be [V, Cvae], got " + shape_str(embedding.shape()));
  if (embedding.dim(0) > INT32_MAX || embedding.dim(1) > INT32_MAX)
    throw Error("codebook: " + shape_str(embedding.shape()) + " is larger than the CUDA kernels index");
  const Tensor e32 = embedding.dtype() == DType::f32 ? embedding : embedding.to(DType::f32);  // [V, Cvae]
  auto cb = std::make_shared<CudaCodebook>();
  const int64_t V = e32.dim(0), C = e32.dim(1);
  cb->vocab = V;
  cb->cvae = C;
  cb->embedding = to_device(e32);  // [V, Cvae]
  const float* e = e32.data<float>();
  Tensor et = Tensor::empty(DType::f32, {C, V});  // [Cvae, V]
  Tensor sq = Tensor::empty(DType::i64, {V});     // [V] float64 bits
  auto* sqd = reinterpret_cast<double*>(sq.raw());
  for (int64_t v = 0; v < V; ++v) {
    double s = 0;  // in channel order, as CpuBackend::codebook_weights sums it: the same bits
    for (int64_t c = 0; c < C; ++c) {
      const double x = e[v * C + c];
      s += x * x;
      et.data<float>()[c * V + v] = e[v * C + c];
    }
    sqd[v] = s;
  }
  cb->embedding_t = to_device(et);
  cb->emb_sq = to_device(sq);
  return cb;
}

void CudaBackend::sample(const backend::SampleArgs& a) const {
  enter();
  if (a.batch <= 0 || a.l <= 0) return;
  if (!a.codebook) throw Error("internal: cuda sample without a codebook");
  check_codebook(*a.codebook, "sample");
  const auto& cb = static_cast<const CudaCodebook&>(*a.codebook);
  if (a.vocab != cb.vocab)
    throw Error("sample: the logits have V = " + std::to_string(a.vocab) + " but the codebook has " +
                std::to_string(cb.vocab) + " codes");
  if (a.scale < 0 || a.scale >= backend::ImageDraw::kMaxScales)
    throw Error("sample: scale " + std::to_string(a.scale) + " is outside [0, " +
                std::to_string(backend::ImageDraw::kMaxScales) + ")");
  if (a.batch * a.l > INT32_MAX) throw Error("sample: " + std::to_string(a.batch * a.l) + " rows are too many");
  const int V = static_cast<int>(a.vocab);
  int sort_n = 1;
  while (sort_n < V) sort_n <<= 1;
  const size_t dynamic = static_cast<size_t>(sort_n) * sizeof(uint64_t) + static_cast<size_t>(V) * sizeof(float);
  int optin = 0;
  VARCODE_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, gpu_));
  cudaFuncAttributes attr{};
  VARCODE_CUDA_CHECK(cudaFuncGetAttributes(&attr, sample_rows));
  const size_t available = static_cast<size_t>(optin) - attr.sharedSizeBytes;
  if (dynamic > available) {
    int64_t max_v = 1;  // the largest power of two that fits (12 bytes a code)
    while (static_cast<size_t>(max_v) * 24 <= available) max_v <<= 1;
    throw Error("sample: a vocabulary of " + std::to_string(V) + " codes needs " + std::to_string(dynamic) +
                " bytes of shared memory per block; " + gpu_name_ + " allows " + std::to_string(available) +
                ", so the CUDA sampler takes at most " + std::to_string(max_v) + " codes here");
  }
  // The same value on every call (no race between threads): the most this GPU allows.
  VARCODE_CUDA_CHECK(
      cudaFuncSetAttribute(sample_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(available)));

  SampleKernelArgs k{};
  k.logits = a.logits;
  k.l = a.l;
  k.vocab = V;
  k.sort_n = sort_n;
  k.draws = a.draws;
  k.scale = a.scale;
  // Host arithmetic of CpuBackend::sample's, so tau and 1 + ratio carry the CPU's bits.
  const double ratio = a.smooth_ratio;
  k.one_plus_ratio = 1 + ratio;
  k.tau = std::max(0.27 * (1 - 0.95 * ratio), 0.005);
  k.codebook = cb.embedding.data<float>();
  k.cvae = static_cast<int>(cb.cvae);
  k.tokens = a.tokens;
  k.token_stride = a.token_stride;
  k.token_begin = a.token_begin;
  k.h = a.h;
  sample_rows<<<static_cast<unsigned>(a.batch * a.l), kThreads, dynamic, stream()>>>(k);
  VARCODE_CUDA_LAUNCHED("sample_rows");
}

void CudaBackend::embed_tokens(const backend::CodebookWeights& codebook, const int64_t* idx, int64_t n,
                               float* h) const {
  enter();
  if (n <= 0) return;
  check_codebook(codebook, "embed_tokens");
  embed_rows<<<grid_for(n * codebook.cvae), kThreads, 0, stream()>>>(codebook.embedding.data<float>(), codebook.vocab,
                                                                     codebook.cvae, idx, n, h);
  VARCODE_CUDA_LAUNCHED("embed_rows");
}

void CudaBackend::nearest_code(const backend::CodebookWeights& codebook, const float* z, int64_t n,
                               int64_t* idx) const {
  enter();
  if (n <= 0) return;
  check_codebook(codebook, "nearest_code");
  if (n > INT32_MAX) throw Error("nearest_code: " + std::to_string(n) + " rows are too many");
  const auto& cb = static_cast<const CudaCodebook&>(codebook);
  const size_t dynamic = static_cast<size_t>(cb.cvae) * sizeof(double);
  if (dynamic > 48 * 1024) throw Error("nearest_code: Cvae = " + std::to_string(cb.cvae) + " is more than 6144");
  nearest_rows<<<static_cast<unsigned>(n), kThreads, dynamic, stream()>>>(
      z, cb.embedding_t.data<float>(), static_cast<const double*>(cb.emb_sq.raw()), static_cast<int>(cb.vocab),
      static_cast<int>(cb.cvae), idx);
  VARCODE_CUDA_LAUNCHED("nearest_rows");
}

}  // namespace varcode::kernels::cuda
