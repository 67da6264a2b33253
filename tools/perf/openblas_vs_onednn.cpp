// f32 GEMM: varcode's Linear (oneDNN inner product, weights packed once) vs OpenBLAS cblas_sgemm
// at the transformer's shapes (issue #5: "compare it with OpenBLAS and keep what measures
// faster"). Debian's OpenBLAS (0.3.21) is built without bfloat16, so only the f32 path compares.
//
// apt-get download libopenblas0-openmp && dpkg -x libopenblas0-openmp_*.deb /tmp/ob
// OB=/tmp/ob/usr/lib/x86_64-linux-gnu/openblas-openmp
// g++ -O2 -std=c++20 -Iinclude -Isrc tools/perf/openblas_vs_onednn.cpp -o /tmp/obl build/libvarcode.a \
//   -ldnnl $(pkg-config --libs libzip libpng) -fopenmp $OB/libopenblas.so.0 -Wl,-rpath,$OB && /tmp/obl
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/cpu/gemm.hpp"
extern "C" void cblas_sgemm(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                            int);
extern "C" void openblas_set_num_threads(int);
using namespace varcode;
int main() {
  openblas_set_num_threads(2);
  struct S {
    int m, k, n;
  } shapes[] = {{32, 1920, 5760}, {512, 1920, 5760}, {512, 1920, 7680}, {512, 7680, 1920}, {200, 1024, 4096}};
  for (auto s : shapes) {
    std::vector<float> x((size_t)s.m * s.k), w((size_t)s.n * s.k), y((size_t)s.m * s.n), b(s.n, 0.f);
    std::mt19937 g(1);
    std::normal_distribution<float> d;
    for (auto& v : x) v = d(g);
    for (auto& v : w) v = d(g) * 0.02f;
    Tensor W = Tensor::empty(DType::f32, {s.n, s.k});
    std::copy(w.begin(), w.end(), W.data<float>());
    Tensor B = Tensor::zeros(DType::f32, {s.n});
    kernels::cpu::Linear lin(W, B);
    double flop = 2.0 * s.m * s.k * s.n;
    double best_d = 1e9, best_o = 1e9;
    for (int r = 0; r < 6; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      lin.forward(x.data(), s.m, y.data());
      auto t1 = std::chrono::steady_clock::now();
      cblas_sgemm(101, 111, 112, s.m, s.n, s.k, 1.f, x.data(), s.k, w.data(), s.k, 0.f, y.data(), s.n);
      auto t2 = std::chrono::steady_clock::now();
      best_d = std::min(best_d, std::chrono::duration<double>(t1 - t0).count());
      best_o = std::min(best_o, std::chrono::duration<double>(t2 - t1).count());
    }
    std::printf("f32 M=%d K=%d N=%d: oneDNN %.0f GFLOP/s, OpenBLAS %.0f GFLOP/s\n", s.m, s.k, s.n, flop / best_d / 1e9,
                flop / best_o / 1e9);
  }
}
