// VAR's l2-normalised self-attention over a KV cache (spec §3.4), one pass per query: no [L, L]
// score matrix is ever materialised.
#pragma once
#include <cstdint>

namespace varcode::kernels::cpu {

// The KV cache of one block: keys (already l2-normalised), transposed per row and head
// [R, H, 64, capacity], and values [R, H, capacity, 64].
struct KvView {
  float* k = nullptr;
  float* v = nullptr;
  int64_t rows = 0, heads = 0, capacity = 0;
  static constexpr int64_t kHeadDim = 64;
};

// qkv: [R, l, 3C] (q | k | v, each H heads of 64) for the tokens at positions [p0, p0 + l).
// Normalises q (times exp(min(scale_mul[h], ln 100))) and k, appends k and v to the cache at
// [p0, p0 + l), then for token t attends to cache positions [0, key_limit[t]) (key_limit[t] >
// p0 + t encodes the block-causal mask: a scale sees itself in full). out: [R, l, C].
void l2norm_attention(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h, const int* key_limit,
                      KvView cache, float* out);

// Naive reference: materialises the scores per query, double accumulation.
void l2norm_attention_reference(const float* qkv, int64_t l, int64_t p0, const float* scale_mul_h,
                                const int* key_limit, KvView cache, float* out);

}  // namespace varcode::kernels::cpu
