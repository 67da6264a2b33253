// int8 against bf16 (and optionally f32) logits, per scale, on random weights at the official
// sizes (issue #17): one image is generated in bf16 for a class and seed, then its tokens are fed
// back (teacher forcing) through the bf16 and the int8 model of the same weights (random int8 =
// the bf16 random matrices quantised per channel). Per scale: the relative L2 error of the logits
// ||int8 - bf16|| / ||bf16||, and the share of positions whose arg-max token agrees.
//   build/varcode_int8_error --depth 30 [--class 207] [--seed 1] [--f32]
// VARCODE_ADALN_DTYPE=bf16 keeps the AdaLN linears in bf16 under int8 (the A/B of that choice).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "varcode/generator.hpp"

using namespace varcode;

namespace {
Tensor logits_of(const ModelFiles& files, ComputeDType dt, const Tensor& tokens, int label) {
  const Generator gen = Generator::open(files, dt);
  return gen.teacher_forced_logits(0, tokens, label);  // [1, L, V]
}

void compare(const char* name, const Tensor& ref, const Tensor& got, const std::vector<int>& pns, int64_t V) {
  std::printf("%s vs bf16, per scale (relative L2 error of the logits, arg-max agreement):\n", name);
  int64_t p0 = 0;
  double all_e = 0, all_r = 0;
  for (size_t si = 0; si < pns.size(); ++si) {
    const int64_t n = int64_t{pns[si]} * pns[si];
    double e2 = 0, r2 = 0;
    int64_t agree = 0;
    for (int64_t t = p0; t < p0 + n; ++t) {
      const float* a = ref.data<float>() + t * V;
      const float* b = got.data<float>() + t * V;
      int64_t ia = 0, ib = 0;
      for (int64_t v = 0; v < V; ++v) {
        e2 += (double{a[v]} - b[v]) * (double{a[v]} - b[v]);
        r2 += double{a[v]} * a[v];
        if (a[v] > a[ia]) ia = v;
        if (b[v] > b[ib]) ib = v;
      }
      agree += ia == ib;
    }
    all_e += e2, all_r += r2;
    std::printf("  scale %zu (%3lld tokens): %.4f  %.3f\n", si, static_cast<long long>(n), std::sqrt(e2 / r2),
                static_cast<double>(agree) / static_cast<double>(n));
    p0 += n;
  }
  std::printf("  all: %.4f\n", std::sqrt(all_e / all_r));
}
}  // namespace

int main(int argc, char** argv) {
  int depth = 30, label = 207;
  uint64_t seed = 1;
  bool with_f32 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--depth" && i + 1 < argc)
      depth = std::atoi(argv[++i]);
    else if (a == "--class" && i + 1 < argc)
      label = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc)
      seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--f32")
      with_f32 = true;
    else {
      std::fprintf(stderr, "usage: %s [--depth N] [--class C] [--seed S] [--f32]\n", argv[0]);
      return 2;
    }
  }
  try {
    ModelFiles files;
    files.vae = "random";
    files.model = "random:d" + std::to_string(depth);
    Tensor tokens;  // [1, L]
    std::vector<int> pns;
    Tensor ref;  // [1, L, V]
    {
      const Generator gen = Generator::open(files, ComputeDType::bf16);
      GenerateRequest req;
      req.classes = {label};
      req.seed = seed;
      tokens = gen.generate(req).tokens;
      pns = gen.patch_nums();
      ref = gen.teacher_forced_logits(0, tokens, label);
    }
    const int64_t V = ref.dim(2);
    std::printf("random:d%d, class %d, seed %llu, tokens of a bf16 sample\n", depth, label,
                static_cast<unsigned long long>(seed));
    compare("int8", ref, logits_of(files, ComputeDType::int8, tokens, label), pns, V);
    if (with_f32) compare("f32", ref, logits_of(files, ComputeDType::f32, tokens, label), pns, V);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
