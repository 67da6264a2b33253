// The refiner's one-pass prefill over several scales equals feeding them one by one.
#include "model/var_transformer.hpp"

#include <gtest/gtest.h>

#include "io/checkpoint.hpp"
#include "test_util.hpp"

namespace varcode::model {

TEST(VarTransformer, PrefillEqualsScaleByScale) {
  io::Checkpoint ckpt = io::load_checkpoint(test::fixture("tiny/refiner.pth"));
  VarTransformer m(ckpt);
  const VarConfig& cfg = m.config();
  const int N = 5;  // prefill scales 0..N
  const int64_t end = cfg.scale_end(N), C = cfg.width, R = 4, V = cfg.vocab;
  const std::vector<int> labels{3, 999};
  auto inputs = test::random_vector(2 * (end - 1) * cfg.cvae, 11);  // [B, end - 1, Cvae]

  // One pass over [0, end).
  VarState a = m.start(labels, end);
  std::vector<float> first(static_cast<size_t>(R * C)), rest(static_cast<size_t>(R * (end - 1) * C));
  m.first_input(a, first.data());
  m.embed(a, inputs.data(), end - 1, 1, rest.data());
  std::vector<float> x(static_cast<size_t>(R * end * C));
  for (int64_t r = 0; r < R; ++r) {
    std::copy_n(first.data() + r * C, C, x.data() + r * end * C);
    std::copy_n(rest.data() + r * (end - 1) * C, (end - 1) * C, x.data() + (r * end + 1) * C);
  }
  m.blocks(a, x.data(), end, 0);
  const int64_t l = cfg.scale_end(N) - cfg.scale_begin(N);
  std::vector<float> la(static_cast<size_t>(R * l * V));
  m.head(a, x.data(), end, cfg.scale_begin(N), l, la.data());

  // Scale by scale with the cache.
  VarState b = m.start(labels, end);
  std::vector<float> xs(static_cast<size_t>(R * C));
  m.first_input(b, xs.data());
  for (int si = 0; si <= N; ++si) {
    const int64_t begin = cfg.scale_begin(si), n = cfg.scale_end(si) - begin;
    if (si > 0) {
      std::vector<float> tok(static_cast<size_t>(2 * n * cfg.cvae));  // [B, n, Cvae]
      for (int64_t bb = 0; bb < 2; ++bb)
        std::copy_n(inputs.data() + (bb * (end - 1) + begin - 1) * cfg.cvae, n * cfg.cvae, tok.data() + bb * n * cfg.cvae);
      xs.assign(static_cast<size_t>(R * n * C), 0);
      m.embed(b, tok.data(), n, begin, xs.data());
    }
    m.blocks(b, xs.data(), n, begin);
  }
  std::vector<float> lb(static_cast<size_t>(R * l * V));
  m.head(b, xs.data(), l, 0, l, lb.data());
  const double err = test::max_abs_diff(la.data(), lb.data(), R * l * V);
  EXPECT_LE(err, 1e-4) << "prefill vs scale-by-scale logits max abs err " << err;
}

TEST(VarTransformer, RejectsAVaeFile) {
  io::Checkpoint ckpt = io::load_checkpoint(test::fixture("tiny/vae.pth"));
  try {
    VarTransformer m(ckpt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("VQ-VAE"), std::string::npos) << e.what();
  }
}

}  // namespace varcode::model
