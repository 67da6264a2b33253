// The CUDA sampler and codebook lookups against the CPU backend's: the same Philox draws
// (kernels/philox.hpp on both sides), the same filters and tie rules, the same latents.
//
// Tokens: the uniforms are the same bits on both devices, and every decision is taken in double on
// both (top-p's cumulative sum, the inverse CDF); only the summation order differs. A token or a
// top-p cut can therefore differ only where the target u * z lands within the two sums' difference
// of a CDF boundary: <= V * 2^-53 * z from the order (Higham's bound on a sum of V positive terms)
// plus 1 ulp per exp (CUDA's exp is within 1 ulp, glibc's within 1), about 1e-12 relative for
// V = 4096, so a mismatch has probability ~1e-12 per draw. The tests allow 1 in 10,000 draws (the
// brief of the sampler: essentially zero, tolerating a freak landing) and print the count; a real
// rule error (a tie broken the other way, a wrong counter) moves hundreds of the draws here, whose
// logits are quantised so that ties sit at the top-k and top-p boundaries.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.hpp"
#include "kernels/cuda/cuda_test_util.hpp"

namespace varcode::test {

namespace {

bool measuring() {
  const char* env = std::getenv("VARCODE_TEST_MEASURE");
  return env && std::string(env) == "1";
}
// A derived bound, or 0 under VARCODE_TEST_MEASURE=1 so that the comparison prints what it measured.
double derived(double bound) { return measuring() ? 0.0 : bound; }
int64_t allowed_mismatches(int64_t draws) { return measuring() ? 0 : draws / 10000; }

Tensor draws_tensor(const std::vector<backend::ImageDraw>& draws) {
  static_assert(sizeof(backend::ImageDraw) % sizeof(float) == 0);
  constexpr int64_t kWords = sizeof(backend::ImageDraw) / sizeof(float);
  Tensor t = Tensor::empty(DType::f32, {static_cast<int64_t>(draws.size()), kWords});  // [B] ImageDraw records
  std::memcpy(t.raw(), draws.data(), draws.size() * sizeof(backend::ImageDraw));
  return t;
}

backend::ImageDraw image_draw(uint64_t seed, uint32_t index, int top_k, double top_p, double t0, int smooth = 0) {
  backend::ImageDraw d;
  d.seed = seed;
  d.image_index = index;
  d.top_k = top_k;
  d.top_p = top_p;
  for (int s = 0; s < backend::ImageDraw::kMaxScales; ++s) d.temperature[s] = t0 + 0.15 * s;  // per scale
  d.smooth = smooth;
  return d;
}

// Logits [B, l, V] of spread `scale`; images listed in `tied` are rounded to quarters, so that many
// logits are equal (ties at the k-th largest, runs of equal values in top-p's sorted order).
Tensor logits_for(int64_t B, int64_t l, int64_t V, uint32_t seed, float scale, const std::vector<int>& tied) {
  Tensor t = random_tensor({B, l, V}, seed, scale);  // [B, l, V]
  for (int b : tied) {
    float* p = t.data<float>() + b * l * V;
    for (int64_t i = 0; i < l * V; ++i) p[i] = std::round(p[i] * 4.0f) / 4.0f;
  }
  return t;
}

struct Drawn {
  Tensor logits, tokens, h;  // [B, l, V] filtered, [B, stride] i64, [B, l, Cvae]
};

constexpr int64_t kTokenBegin = 3, kTokenPad = 5;  // the scale's tokens sit inside a longer row

Drawn run_sample(const backend::Backend& be, const backend::CodebookWeights& cb, const Tensor& logits,
                 const Tensor& draws, int scale, double ratio) {
  const int64_t B = logits.dim(0), l = logits.dim(1), V = logits.dim(2), stride = kTokenBegin + l + kTokenPad;
  Tensor lg = be.to_device(logits);                   // [B, l, V]
  Tensor dr = be.to_device(draws);                    // [B] ImageDraw
  Tensor tokens = be.zeros(DType::i64, {B, stride});  // [B, stride]
  Tensor h = be.zeros(DType::f32, {B, l, cb.cvae});   // [B, l, Cvae]
  backend::SampleArgs a;
  a.logits = lg.data<float>();
  a.batch = B;
  a.l = l;
  a.vocab = V;
  a.draws = static_cast<const backend::ImageDraw*>(dr.raw());
  a.scale = scale;
  a.smooth_ratio = ratio;
  a.codebook = &cb;
  a.tokens = tokens.data<int64_t>();
  a.token_stride = stride;
  a.token_begin = kTokenBegin;
  a.h = h.data<float>();
  be.sample(a);
  return {be.to_host(lg), be.to_host(tokens), be.to_host(h)};
}

struct Comparison {
  int64_t draws = 0, token_mismatches = 0, filter_mismatches = 0;
  double hard_h_err = 0;    // rows without smooth whose tokens agree: codebook rows, exact
  double smooth_h_err = 0;  // smooth rows whose filtered logits agree
  bool outside_written = false;
};

Comparison compare(const Drawn& cpu_out, const Drawn& gpu_out, const std::vector<backend::ImageDraw>& draws) {
  Comparison c;
  const int64_t B = cpu_out.logits.dim(0), l = cpu_out.logits.dim(1), V = cpu_out.logits.dim(2);
  const int64_t C = cpu_out.h.dim(2), stride = cpu_out.tokens.dim(1);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t* tc = cpu_out.tokens.data<int64_t>() + b * stride;
    const int64_t* tg = gpu_out.tokens.data<int64_t>() + b * stride;
    for (int64_t j = 0; j < stride; ++j)
      if ((j < kTokenBegin || j >= kTokenBegin + l) && tg[j] != 0) c.outside_written = true;
    for (int64_t t = 0; t < l; ++t) {
      ++c.draws;
      const int64_t r = b * l + t;
      const bool same_token = tc[kTokenBegin + t] == tg[kTokenBegin + t];
      if (!same_token) ++c.token_mismatches;
      const bool same_filter = std::memcmp(cpu_out.logits.data<float>() + r * V, gpu_out.logits.data<float>() + r * V,
                                           sizeof(float) * static_cast<size_t>(V)) == 0;
      if (!same_filter) ++c.filter_mismatches;
      const float* hc = cpu_out.h.data<float>() + r * C;
      const float* hg = gpu_out.h.data<float>() + r * C;
      if (!draws[static_cast<size_t>(b)].smooth) {
        if (same_token) c.hard_h_err = std::max(c.hard_h_err, max_abs_diff(hc, hg, C));
      } else if (same_filter) {
        c.smooth_h_err = std::max(c.smooth_h_err, max_abs_diff(hc, hg, C));
      }
    }
  }
  return c;
}

struct Codebooks {
  Tensor host;  // [V, Cvae]
  std::shared_ptr<const backend::CodebookWeights> cpu, gpu;
  double max_abs = 0;
};

Codebooks codebooks(const backend::Backend& gpu, int64_t V, int64_t C, uint32_t seed) {
  Codebooks cb;
  cb.host = random_tensor({V, C}, seed);  // [V, Cvae]
  cb.cpu = cpu()->codebook_weights(cb.host);
  cb.gpu = gpu.codebook_weights(cb.host);
  for (int64_t i = 0; i < cb.host.numel(); ++i)
    cb.max_abs = std::max(cb.max_abs, static_cast<double>(std::fabs(cb.host.data<float>()[i])));
  return cb;
}

// The smooth latent: the CPU adds float(p_v e_vc) over V codes in float, at most V * 2^-24 * sum|p e|
// <= V * 2^-24 * max|e| off (sum p = 1); the GPU sums in double and rounds once (2^-24 |h|); the
// weights' exp/log differ by ulps of double, negligible. Bound: (V + 1) * 2^-24 * max|e|.
double smooth_bound(int64_t V, double max_abs) { return static_cast<double>(V + 1) * std::ldexp(1.0, -24) * max_abs; }

// `allowed`: the mismatches the whole test's draws may have (1 in 10,000 of them, see the top).
void expect_matches(const Comparison& c, int64_t allowed, int64_t V, double max_abs, const std::string& what) {
  EXPECT_FALSE(c.outside_written) << what << ": tokens written outside [token_begin, token_begin + l)";
  EXPECT_LE(c.token_mismatches, allowed) << what << ": " << c.token_mismatches << " of " << c.draws
                                         << " tokens differ from the CPU's";
  EXPECT_LE(c.filter_mismatches, allowed)
      << what << ": " << c.filter_mismatches << " of " << c.draws << " filtered rows differ from the CPU's";
  EXPECT_EQ(c.hard_h_err, 0.0) << what << ": a codebook row is copied, so it must be exact";
  EXPECT_LE(c.smooth_h_err, derived(smooth_bound(V, max_abs))) << what << ": smooth latent";
  std::cout << "[ measured ] " << what << ": " << c.token_mismatches << " / " << c.draws << " tokens, "
            << c.filter_mismatches << " filtered rows differ; smooth h err " << c.smooth_h_err << "\n";
}

}  // namespace

// The model's vocabulary, six images with their own seeds and settings in one batch (none, top-k,
// top-p, both, greedy with tied maxima, both on tied logits), per-scale temperatures, three scales:
// 6 * 577 * 3 = 10,386 draws.
TEST(CudaSampling, DrawsMatchTheCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const int64_t V = 4096, C = 32, B = 6, l = 577;
  const Codebooks cb = codebooks(*gpu, V, C, 71);
  const std::vector<backend::ImageDraw> draws = {
      image_draw(11, 0, 0, 0, 1.0),     image_draw(12, 3, 900, 0, 0.7), image_draw(11, 1, 0, 0.85, 1.3),
      image_draw(99, 2, 600, 0.7, 0.9), image_draw(5, 4, 1, 0, 1.0),    image_draw(7, 5, 40, 0.95, 0.6),
  };
  const Tensor dr = draws_tensor(draws);  // [B] ImageDraw
  const std::vector<int> scales = {0, 4, 9};
  const int64_t allowed = allowed_mismatches(B * l * static_cast<int64_t>(scales.size()));
  int64_t total = 0, mismatched = 0, filtered = 0;
  for (int scale : scales) {
    const Tensor logits = logits_for(B, l, V, 100 + static_cast<uint32_t>(scale), 2.0f, {1, 3, 4, 5});  // [B, l, V]
    const Drawn c = run_sample(*cpu(), *cb.cpu, logits, dr, scale, scale / 9.0);
    const Drawn g = run_sample(*gpu, *cb.gpu, logits, dr, scale, scale / 9.0);
    const Comparison cmp = compare(c, g, draws);
    expect_matches(cmp, allowed, V, cb.max_abs, "scale " + std::to_string(scale));
    total += cmp.draws;
    mismatched += cmp.token_mismatches;
    filtered += cmp.filter_mismatches;
  }
  EXPECT_LE(mismatched, allowed) << mismatched << " of " << total << " tokens differ";
  EXPECT_LE(filtered, allowed) << filtered << " of " << total << " filtered rows differ";
}

// The Gumbel-softmax latent beside hard lookups in one batch, at a flat (ratio 2/9) and a nearly
// one-hot (ratio 1, tau 0.0135) temperature of the mixture.
TEST(CudaSampling, SmoothLatentMatchesTheCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const int64_t V = 4096, C = 32, B = 4, l = 19;
  const Codebooks cb = codebooks(*gpu, V, C, 72);
  const std::vector<backend::ImageDraw> draws = {
      image_draw(3, 0, 0, 0, 1.0, 1),
      image_draw(4, 1, 100, 0, 1.1, 1),
      image_draw(3, 2, 0, 0.9, 1.0, 0),
      image_draw(8, 3, 50, 0.8, 0.8, 1),
  };
  const Tensor dr = draws_tensor(draws);  // [B] ImageDraw
  for (int scale : {2, 9}) {
    const Tensor logits = logits_for(B, l, V, 200 + static_cast<uint32_t>(scale), 2.0f, {1});  // [B, l, V]
    const double ratio = scale / 9.0;
    const Drawn c = run_sample(*cpu(), *cb.cpu, logits, dr, scale, ratio);
    const Drawn g = run_sample(*gpu, *cb.gpu, logits, dr, scale, ratio);
    const Comparison cmp = compare(c, g, draws);
    expect_matches(cmp, allowed_mismatches(cmp.draws), V, cb.max_abs, "smooth, scale " + std::to_string(scale));
  }
}

// Vocabularies the sort pads (1, 37: below one block; 1000; 5000: past 4096, beyond 48 KB of shared
// memory), small Cvae, every filter.
TEST(CudaSampling, OddVocabulariesMatchTheCpu) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  for (int64_t V : {1, 37, 1000, 5000}) {
    const int64_t C = 7, B = 5, l = 33;
    const Codebooks cb = codebooks(*gpu, V, C, 73 + static_cast<uint32_t>(V));
    const int k = static_cast<int>(std::max<int64_t>(1, V / 3));
    const std::vector<backend::ImageDraw> draws = {
        image_draw(1, 0, 0, 0, 1.0),      image_draw(2, 1, k, 0, 1.0),    image_draw(3, 2, 0, 0.6, 1.2),
        image_draw(4, 3, k, 0.9, 0.9, 1), image_draw(5, 4, 1, 0, 1.0, 0),
    };
    const Tensor dr = draws_tensor(draws);                                                    // [B] ImageDraw
    const Tensor logits = logits_for(B, l, V, 300 + static_cast<uint32_t>(V), 1.5f, {1, 4});  // [B, l, V]
    const Drawn c = run_sample(*cpu(), *cb.cpu, logits, dr, 5, 5 / 9.0);
    const Drawn g = run_sample(*gpu, *cb.gpu, logits, dr, 5, 5 / 9.0);
    const Comparison cmp = compare(c, g, draws);
    expect_matches(cmp, allowed_mismatches(cmp.draws), V, cb.max_abs, "V = " + std::to_string(V));
  }
}

// A vocabulary whose sort does not fit in a block's shared memory is refused, saying so.
TEST(CudaSampling, TooLargeAVocabularyIsRefused) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const int64_t V = 1 << 16, C = 2;
  const Codebooks cb = codebooks(*gpu, V, C, 74);
  const Tensor dr = draws_tensor({image_draw(1, 0, 0, 0, 1.0)});  // [1] ImageDraw
  const Tensor logits = logits_for(1, 1, V, 400, 1.0f, {});       // [1, 1, V]
  try {
    run_sample(*gpu, *cb.gpu, logits, dr, 0, 0.0);
    FAIL() << "V = 65536 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at most"), std::string::npos) << e.what();
  }
}

// nearest_code runs in double on both: equal indices, with exact ties (a duplicated code) going to
// the lower index on both.
TEST(CudaCodebook, NearestCodeIsTheCpus) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  for (const auto& [V, C] : std::vector<std::pair<int64_t, int64_t>>{{4096, 32}, {1000, 7}}) {
    Tensor emb = random_tensor({V, C}, 80 + static_cast<uint32_t>(C));  // [V, Cvae]
    float* e = emb.data<float>();
    std::memcpy(e + 20 * C, e + 10 * C, sizeof(float) * static_cast<size_t>(C));  // code 20 = code 10
    const auto cb_cpu = cpu()->codebook_weights(emb);
    const auto cb_gpu = gpu->codebook_weights(emb);
    const int64_t n = 3 * 77;
    Tensor z = random_tensor({n, C}, 90 + static_cast<uint32_t>(C));                            // [n, Cvae]
    std::memcpy(z.data<float>(), e + 10 * C, sizeof(float) * static_cast<size_t>(C));           // the tie
    std::memcpy(z.data<float>() + C, e + (V - 1) * C, sizeof(float) * static_cast<size_t>(C));  // the last code
    auto nearest = [&](const backend::Backend& be, const backend::CodebookWeights& cb) {
      Tensor zd = be.to_device(z);             // [n, Cvae]
      Tensor idx = be.zeros(DType::i64, {n});  // [n]
      be.nearest_code(cb, zd.data<float>(), n, idx.data<int64_t>());
      return be.to_host(idx);
    };
    const Tensor ic = nearest(*cpu(), *cb_cpu), ig = nearest(*gpu, *cb_gpu);  // [n]
    EXPECT_EQ(ic.data<int64_t>()[0], 10);
    EXPECT_EQ(ig.data<int64_t>()[0], 10) << "an exact tie goes to the lower index";
    EXPECT_EQ(ig.data<int64_t>()[1], V - 1);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += ic.data<int64_t>()[i] != ig.data<int64_t>()[i];
    EXPECT_EQ(differ, 0) << "V = " << V << ", Cvae = " << C << ": " << differ << " of " << n << " indices differ";
  }
}

TEST(CudaCodebook, EmbedTokensCopiesRows) {
  VARCODE_REQUIRE_GPU_BACKEND(gpu);
  const int64_t V = 1000, C = 7, n = 101;
  const Tensor emb = random_tensor({V, C}, 95);  // [V, Cvae]
  const auto cb_cpu = cpu()->codebook_weights(emb);
  const auto cb_gpu = gpu->codebook_weights(emb);
  Tensor idx = Tensor::empty(DType::i64, {n});  // [n]
  for (int64_t i = 0; i < n; ++i) idx.data<int64_t>()[i] = (i * 379 + 11) % V;
  auto embed = [&](const backend::Backend& be, const backend::CodebookWeights& cb) {
    Tensor id = be.to_device(idx);            // [n]
    Tensor h = be.zeros(DType::f32, {n, C});  // [n, Cvae]
    be.embed_tokens(cb, id.data<int64_t>(), n, h.data<float>());
    return be.to_host(h);
  };
  EXPECT_EQ(max_abs_diff(embed(*cpu(), *cb_cpu), embed(*gpu, *cb_gpu)), 0.0);
}

}  // namespace varcode::test
