// Two requests on one immutable model at once give what each gives alone (the README's promise:
// share a Generator or a VqvaeModel between threads). "Parity" keeps it out of the sanitizer pass.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>

#include "test_util.hpp"
#include "varcode/vqvae.hpp"

namespace varcode {
namespace {

Tensor random_tokens(int64_t B, uint32_t seed) {
  Tensor t = Tensor::empty(DType::i64, {B, 680});  // [B, 680]
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = static_cast<int64_t>(rng() % 4096);
  return t;
}

TEST(ConcurrencyParity, TwoDecodesOnOneVqvaeAtOnceEqualEachAlone) {
  const VqvaeModel vae = VqvaeModel::open(test::fixture("tiny/vae.pth"));
  const Tensor tokens[2] = {random_tokens(2, 1), random_tokens(2, 2)};
  const Tensor alone[2] = {vae.decode_tokens(tokens[0]), vae.decode_tokens(tokens[1])};  // [2, 3, 256, 256]
  for (int rep = 0; rep < 3; ++rep) {
    Tensor together[2];
    std::thread a([&] { together[0] = vae.decode_tokens(tokens[0]); });
    std::thread b([&] { together[1] = vae.decode_tokens(tokens[1]); });
    a.join();
    b.join();
    for (int i = 0; i < 2; ++i)
      EXPECT_EQ(std::memcmp(together[i].raw(), alone[i].raw(), alone[i].nbytes()), 0)
          << "request " << i << " of round " << rep << " differs from the same request alone";
  }
}

}  // namespace
}  // namespace varcode
