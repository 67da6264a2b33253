// The counter-based generator every sampler draws from (spec §5.1): Philox4x32-10 and the uniform
// made from its output, as plain integer arithmetic in one header that the CPU sampler
// (kernels/cpu/sampling.cpp) and the CUDA kernels (kernels/cuda/sampling.cu) both include. One
// implementation means one set of bits: an image depends on its seed and settings, not on the
// device that drew it (tests/kernels/sampling_test.cpp holds the known-answer vectors).
#pragma once
#include <cstdint>

#ifndef VARCODE_HD
#ifdef __CUDACC__
#define VARCODE_HD __host__ __device__
#else
#define VARCODE_HD
#endif
#endif

namespace varcode::kernels {

// Philox4x32-10 (Salmon et al., SC'11): a keyed bijection of a 128-bit counter.
VARCODE_HD inline void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n1 = static_cast<uint32_t>(p1);
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    const uint32_t n3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// A uniform double in [0, 1) with 53 random bits: Philox keyed by the seed, of the counter
// (image, scale, position, draw), so a draw never depends on what other draws consumed. The
// integer is below 2^53 and the factor a power of two, so the conversion is exact on every device.
VARCODE_HD inline double counter_uniform(uint64_t seed, uint32_t image, uint32_t scale, uint32_t position,
                                         uint32_t draw) {
  const uint32_t counter[4] = {image, scale, position, draw};
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  uint32_t out[4];
  philox4x32_10(counter, key, out);
  const uint64_t bits = (static_cast<uint64_t>(out[0]) << 21) ^ (out[1] >> 11);  // 53 bits
  return static_cast<double>(bits & ((1ULL << 53) - 1)) * (1.0 / 9007199254740992.0);
}

}  // namespace varcode::kernels
