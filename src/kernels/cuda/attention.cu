// VAR's l2-normalised attention (spec §3.4) over a KV cache on the GPU, in one pass per query tile:
// keys and values stream through shared memory in tiles and each query keeps an online softmax
// (running max, running sum, rescaled output), so no [L, L] score matrix exists anywhere.
//
// The cache of one block is two tensors [R, H, capacity, 64] (keys already l2-normalised, values),
// bf16 when the model computes in bf16 (the reference's autocast rounds q, k and v to bf16 before
// the products), f32 otherwise; scores, softmax and the output accumulate in f32 either way.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_context.hpp"

namespace varcode::kernels::cuda {

namespace {

constexpr int kHeadDim = 64;    // every VAR model's (C = 64 * heads)
constexpr int kQueryTile = 64;  // queries per block, one per thread
constexpr int kKeyTile = 32;    // keys per shared-memory tile
constexpr int kAppendWarps = 4;
constexpr int kMaxSegments = 64;                   // key-limit runs passed by value (VAR: one per scale)
constexpr float kLn100 = 4.60517018598809136804f;  // (float) ln 100, the head scale's cap

struct CudaKvCache final : backend::KvCache {
  Tensor k, v;  // [R, H, capacity, 64] f32 or bf16
};

// VARCODE_KV_CACHE=f32 keeps f32 attention under bf16 weights, as on the CPU backend.
bool bf16_cache_for(DType compute) {
  const char* kv_env = std::getenv("VARCODE_KV_CACHE");
  const std::string kv = kv_env ? kv_env : "";
  if (!kv.empty() && kv != "f32" && kv != "auto") throw Error("VARCODE_KV_CACHE must be f32 or auto, got '" + kv + "'");
  return (compute == DType::bf16 || compute == DType::i8) && kv != "f32";
}

// The key limits as runs of consecutive queries sharing one limit: VAR's block-causal mask is one
// run per scale, small enough for the kernel's parameters (no upload, no wait on the host).
struct KeyLimitRuns {
  int count = 0;
  int first[kMaxSegments] = {};  // first query of each run, ascending
  int limit[kMaxSegments] = {};
  __device__ int of(int t) const {
    int s = 0;
    while (s + 1 < count && first[s + 1] <= t) ++s;
    return limit[s];
  }
};

__device__ inline float load_f32(const float* p) { return *p; }
__device__ inline float load_f32(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void store_as(float* p, float v) { *p = v; }
__device__ inline void store_as(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// One warp per (row, token, head): k / ||k|| and v into the cache at position p0 + t.
// qkv [R, l, 3C]; k_cache, v_cache [R, H, cap, 64] starting at the call's first row.
template <typename T>
__global__ void append_kv_kernel(const float* __restrict__ qkv, int64_t rows, int64_t l, int64_t heads, int64_t cap,
                                 int64_t p0, T* __restrict__ k_cache, T* __restrict__ v_cache) {
  const int64_t item = blockIdx.x * int64_t{kAppendWarps} + threadIdx.x / 32;
  if (item >= rows * l * heads) return;  // whole warps leave together
  const int lane = threadIdx.x % 32;
  const int64_t h = item % heads, t = (item / heads) % l, r = item / (heads * l);
  const int64_t C = heads * kHeadDim;
  const float* k = qkv + (r * l + t) * 3 * C + C + h * kHeadDim;  // [64]
  const float* v = k + C;                                         // [64]
  // Each lane sums all 64 squares in order, unfused, as the CPU does: the normalised keys (and
  // under bf16 their rounding) then come out bit-identical to the CPU backend's.
  float kn = 0.0f;
  for (int d = 0; d < kHeadDim; ++d) kn = __fadd_rn(kn, __fmul_rn(k[d], k[d]));
  const float ks = 1.0f / fmaxf(sqrtf(kn), 1e-12f);
  const float k0 = k[lane], k1 = k[lane + 32];
  const int64_t at = ((r * heads + h) * cap + p0 + t) * kHeadDim;
  store_as(k_cache + at + lane, __fmul_rn(k0, ks));
  store_as(k_cache + at + lane + 32, __fmul_rn(k1, ks));
  store_as(v_cache + at + lane, v[lane]);
  store_as(v_cache + at + lane + 32, v[lane + 32]);
}

// Block (query tile, head, row); thread i holds query tile * 64 + i: its normalised, scaled q and
// its output accumulate in registers while the block's keys [0, max limit) pass through shared
// memory. limits_dev (when set) replaces `runs` with one limit per query.
template <typename T>
__global__ void __launch_bounds__(kQueryTile)
    attend_kernel(const float* __restrict__ qkv, int l, int heads, int64_t cap, const T* __restrict__ k_cache,
                  const T* __restrict__ v_cache, const float* __restrict__ scale_mul, KeyLimitRuns runs,
                  const int* __restrict__ limits_dev, bool round_q, float* __restrict__ out) {
  __shared__ __align__(16) float ks[kKeyTile][kHeadDim];
  __shared__ __align__(16) float vs[kKeyTile][kHeadDim];
  __shared__ float scores[kQueryTile][kKeyTile + 1];  // + 1: each thread's row in its own bank
  __shared__ int block_keys;
  const int64_t r = blockIdx.z;
  const int h = blockIdx.y;
  const int t = blockIdx.x * kQueryTile + threadIdx.x;
  const int64_t C = int64_t{heads} * kHeadDim;
  const bool active = t < l;
  const int limit = active ? (limits_dev ? limits_dev[t] : runs.of(t)) : 0;
  if (threadIdx.x == 0) block_keys = 0;
  __syncthreads();
  if (active) atomicMax(&block_keys, limit);
  __syncthreads();
  const int n_keys = block_keys;

  float q[kHeadDim];
  if (active) {
    const float* qr = qkv + (r * l + t) * 3 * C + h * kHeadDim;  // [64]
    float qn = 0;
#pragma unroll
    for (int d = 0; d < kHeadDim; ++d) {
      q[d] = qr[d];
      qn = __fadd_rn(qn, __fmul_rn(q[d], q[d]));  // in order, unfused: the CPU's q exactly
    }
    // exp in double rounded once: the correctly rounded expf of the CPU's libm.
    const float head_scale = static_cast<float>(exp(static_cast<double>(fminf(scale_mul[h], kLn100))));
    const float qs = head_scale / fmaxf(sqrtf(qn), 1e-12f);
#pragma unroll
    for (int d = 0; d < kHeadDim; ++d) {
      q[d] = __fmul_rn(q[d], qs);
      if (round_q) q[d] = __bfloat162float(__float2bfloat16_rn(q[d]));
    }
  } else {
#pragma unroll
    for (int d = 0; d < kHeadDim; ++d) q[d] = 0.0f;
  }

  float o[kHeadDim];
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) o[d] = 0.0f;
  float running_max = -INFINITY, running_sum = 0.0f;
  const T* kb = k_cache + (r * heads + h) * cap * kHeadDim;  // [cap, 64]
  const T* vb = v_cache + (r * heads + h) * cap * kHeadDim;  // [cap, 64]
  for (int j0 = 0; j0 < n_keys; j0 += kKeyTile) {
    const int in_tile = min(kKeyTile, n_keys - j0);
    __syncthreads();  // the previous tile is no longer read
    for (int e = threadIdx.x; e < kKeyTile * kHeadDim; e += kQueryTile) {
      const int j = e / kHeadDim, d = e % kHeadDim;
      const bool key = j < in_tile;
      ks[j][d] = key ? load_f32(kb + int64_t{j0 + j} * kHeadDim + d) : 0.0f;
      vs[j][d] = key ? load_f32(vb + int64_t{j0 + j} * kHeadDim + d) : 0.0f;
    }
    __syncthreads();
    const int mine = min(in_tile, limit - j0);  // this query's keys in the tile (may be <= 0)
    if (mine <= 0) continue;
    float tile_max = -INFINITY;
    for (int j = 0; j < mine; ++j) {
      const float4* k4 = reinterpret_cast<const float4*>(ks[j]);
      float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;  // four chains: the FMAs' latency overlaps
#pragma unroll
      for (int d4 = 0; d4 < kHeadDim / 4; ++d4) {
        const float4 kv = k4[d4];
        s0 = fmaf(q[4 * d4], kv.x, s0);
        s1 = fmaf(q[4 * d4 + 1], kv.y, s1);
        s2 = fmaf(q[4 * d4 + 2], kv.z, s2);
        s3 = fmaf(q[4 * d4 + 3], kv.w, s3);
      }
      const float s = (s0 + s1) + (s2 + s3);
      scores[threadIdx.x][j] = s;
      tile_max = fmaxf(tile_max, s);
    }
    const float new_max = fmaxf(running_max, tile_max);
    const float correction = expf(running_max - new_max);  // 0 on the first tile (max was -inf)
    running_sum *= correction;
#pragma unroll
    for (int d = 0; d < kHeadDim; ++d) o[d] *= correction;
    for (int j = 0; j < mine; ++j) {
      const float p = expf(scores[threadIdx.x][j] - new_max);
      running_sum += p;
      const float4* v4 = reinterpret_cast<const float4*>(vs[j]);
#pragma unroll
      for (int d4 = 0; d4 < kHeadDim / 4; ++d4) {
        const float4 vv = v4[d4];
        o[4 * d4] = fmaf(p, vv.x, o[4 * d4]);
        o[4 * d4 + 1] = fmaf(p, vv.y, o[4 * d4 + 1]);
        o[4 * d4 + 2] = fmaf(p, vv.z, o[4 * d4 + 2]);
        o[4 * d4 + 3] = fmaf(p, vv.w, o[4 * d4 + 3]);
      }
    }
    running_max = new_max;
  }
  if (!active) return;
  const float inv = 1.0f / running_sum;                // limit >= 1 (checked on the host): sum >= 1
  float* orow = out + (r * l + t) * C + h * kHeadDim;  // [64]
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) orow[d] = o[d] * inv;
}

template <typename T>
void launch(const CudaKvCache& c, int64_t r0, int64_t rows, const float* qkv, int64_t l, int64_t p0,
            const float* scale_mul, const KeyLimitRuns& runs, const int* limits_dev, float* out) {
  const int64_t H = c.heads, cap = c.capacity;
  const int64_t off = r0 * H * cap * kHeadDim;  // cache rows [r0, r0 + rows)
  T* kc = static_cast<T*>(const_cast<void*>(c.k.raw())) + off;
  T* vc = static_cast<T*>(const_cast<void*>(c.v.raw())) + off;
  const int64_t items = rows * l * H;
  append_kv_kernel<T>
      <<<blocks_for(items, kAppendWarps), kAppendWarps * 32, 0, stream()>>>(qkv, rows, l, H, cap, p0, kc, vc);
  VARCODE_CUDA_LAUNCHED("append_kv");
  const dim3 grid(blocks_for(l, kQueryTile), static_cast<unsigned>(H), static_cast<unsigned>(rows));
  attend_kernel<T><<<grid, kQueryTile, 0, stream()>>>(qkv, static_cast<int>(l), static_cast<int>(H), cap, kc, vc,
                                                      scale_mul, runs, limits_dev, std::is_same_v<T, __nv_bfloat16>,
                                                      out);
  VARCODE_CUDA_LAUNCHED("l2norm_attention");
}

}  // namespace

std::unique_ptr<backend::KvCache> CudaBackend::kv_cache(int64_t rows, int64_t heads, int64_t capacity,
                                                        DType compute) const {
  enter();
  if (rows <= 0 || heads <= 0 || capacity <= 0)
    throw Error("internal: KV cache of " + std::to_string(rows) + " rows, " + std::to_string(heads) + " heads, " +
                std::to_string(capacity) + " positions");
  if (rows > 65535 || heads > 65535)
    throw Error("cuda backend: a KV cache holds at most 65535 rows and heads (got " + std::to_string(rows) + " rows, " +
                std::to_string(heads) + " heads)");
  if (capacity > 0x7fffffff) throw Error("cuda backend: KV cache capacity over 2^31 positions");
  auto cache = std::make_unique<CudaKvCache>();
  cache->rows = rows;
  cache->heads = heads;
  cache->capacity = capacity;
  const Shape shape{rows, heads, capacity, kHeadDim};
  const DType dt = bf16_cache_for(compute) ? DType::bf16 : DType::f32;
  // Zeroed: positions not yet written read as zero keys and values, never as stale memory.
  cache->k = zeros(dt, shape);  // [R, H, cap, 64] l2-normalised keys
  cache->v = zeros(dt, shape);  // [R, H, cap, 64]
  return cache;
}

void CudaBackend::attention(backend::KvCache& cache, int64_t r0, int64_t rows, const float* qkv, int64_t l, int64_t p0,
                            const float* scale_mul, std::span<const int> key_limit, float* out) const {
  enter();
  auto* c = dynamic_cast<CudaKvCache*>(&cache);
  if (!c) throw Error("internal: a KV cache of another backend given to the cuda backend");
  if (static_cast<int64_t>(key_limit.size()) != l) throw Error("internal: one key limit per query expected");
  if (r0 < 0 || rows < 0 || r0 + rows > c->rows)
    throw Error("internal: attention rows [" + std::to_string(r0) + ", " + std::to_string(r0 + rows) +
                ") outside a KV cache of " + std::to_string(c->rows) + " rows");
  if (p0 < 0 || l < 0 || p0 + l > c->capacity)
    throw Error("internal: attention positions [" + std::to_string(p0) + ", " + std::to_string(p0 + l) +
                ") outside a KV cache of " + std::to_string(c->capacity) + " positions");
  if (rows == 0 || l == 0) return;
  KeyLimitRuns runs;
  for (int64_t t = 0; t < l; ++t) {
    const int lim = key_limit[static_cast<size_t>(t)];
    if (lim < 1 || lim > c->capacity)
      throw Error("internal: key limit " + std::to_string(lim) + " of query " + std::to_string(t) + " outside [1, " +
                  std::to_string(c->capacity) + "]");
    if (runs.count > 0 && runs.count <= kMaxSegments && runs.limit[runs.count - 1] == lim) continue;
    if (runs.count < kMaxSegments) {
      runs.first[runs.count] = static_cast<int>(t);
      runs.limit[runs.count] = lim;
    }
    ++runs.count;
  }
  const int* limits_dev = nullptr;
  if (runs.count > kMaxSegments) {
    // Not VAR's block-causal schedule: one limit per query, uploaded. The wait keeps the copy from
    // reading the caller's host buffer after it may be gone.
    const size_t bytes = static_cast<size_t>(l) * sizeof(int);
    int* dev = static_cast<int*>(scratch(1, bytes));  // [l]
    VARCODE_CUDA_CHECK(cudaMemcpyAsync(dev, key_limit.data(), bytes, cudaMemcpyHostToDevice, stream()));
    VARCODE_CUDA_CHECK(cudaStreamSynchronize(stream()));
    limits_dev = dev;
    runs.count = 1;  // unused
  }
  if (c->k.dtype() == DType::bf16)
    launch<__nv_bfloat16>(*c, r0, rows, qkv, l, p0, scale_mul, runs, limits_dev, out);
  else
    launch<float>(*c, r0, rows, qkv, l, p0, scale_mul, runs, limits_dev, out);
}

}  // namespace varcode::kernels::cuda
