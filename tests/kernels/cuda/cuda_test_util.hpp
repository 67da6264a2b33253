// GPU tests: the CUDA backend against the CPU backend on the same machine (the CPU backend is the
// one proven against the fixtures). Where no GPU can run the backend (CI, a build without CUDA)
// every such test skips and prints why; scripts/gpu-check.sh sets VARCODE_REQUIRE_GPU=1, so that
// on a GPU machine a skip is a failure instead.
//
// Tolerances: until the GPU runs have measured the errors, each test's bound is derived from the
// arithmetic (stated beside it); gpu-check.sh runs the suite with VARCODE_TEST_MEASURE=1 as well,
// which prints every measured error, so the bounds can then follow the suite's 10x rule.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "backend/backend.hpp"
#include "backend/devices.hpp"
#include "test_util.hpp"
#include "varcode/runtime.hpp"

namespace varcode::test {

inline bool gpu_required() {
  const char* v = std::getenv("VARCODE_REQUIRE_GPU");
  return v && std::string(v) == "1";
}

// The CUDA backend of GPU 0 (VARCODE_TEST_GPU picks another), or null with `why` set.
inline std::shared_ptr<const backend::Backend> gpu_backend(std::string& why) {
  const char* idx = std::getenv("VARCODE_TEST_GPU");
  const int gpu = idx ? std::atoi(idx) : 0;
  why = cuda_unavailable_reason(gpu);
  if (!why.empty()) return nullptr;
  return backend::backend_for({DeviceType::cuda, gpu});
}

inline std::shared_ptr<const backend::Backend> cpu() { return backend::cpu_backend(); }

inline bool measuring() {
  const char* v = std::getenv("VARCODE_TEST_MEASURE");
  return v && std::string(v) == "1";
}

// EXPECT_LE(err, bound) for a bound derived from the arithmetic; under VARCODE_TEST_MEASURE=1 a
// printed line instead (the measured figures the bounds will follow once a GPU has run them).
inline void expect_within(double err, double bound, const std::string& what) {
  if (measuring()) {
    std::printf("[measure] %s: max abs err %.3g (bound %.3g)\n", what.c_str(), err, bound);
    EXPECT_TRUE(std::isfinite(err)) << what;
    return;
  }
  EXPECT_LE(err, bound) << what;
}

// Host tensor -> the backend's device, and back (both copies).
inline Tensor up(const backend::Backend& be, const Tensor& host) { return be.to_device(host); }
inline Tensor down(const backend::Backend& be, const Tensor& t) { return be.to_host(t); }

// A host f32 tensor of `shape`, normal values of standard deviation `scale` (test::random_vector).
inline Tensor random_tensor(Shape shape, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(DType::f32, shape);
  const auto v = random_vector(t.numel(), seed, scale);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

}  // namespace varcode::test

// The GPU backend for this test, or skip (fail under VARCODE_REQUIRE_GPU=1) saying why.
#define VARCODE_REQUIRE_GPU_BACKEND(var)                                                        \
  std::shared_ptr<const ::varcode::backend::Backend> var;                                       \
  {                                                                                             \
    std::string varcode_why_;                                                                   \
    var = ::varcode::test::gpu_backend(varcode_why_);                                           \
    if (!var) {                                                                                 \
      if (::varcode::test::gpu_required()) FAIL() << "VARCODE_REQUIRE_GPU=1: " << varcode_why_; \
      GTEST_SKIP() << "no CUDA GPU: " << varcode_why_;                                          \
    }                                                                                           \
  }
