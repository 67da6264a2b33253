// Greedy-token parity against a fixture, with the fixtures README's near-tie rule applied narrowly.
#pragma once
#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "varcode/tensor.hpp"

namespace varcode::test {

// fixtures README: two correct f32 implementations can only disagree where the reference's own
// margin between its best and second-best logit (greedy_gap) is tiny.
constexpr double kNearTieGap = 1e-4;

enum class TokenParity { identical, near_tie, mismatch };

// Every token of `got` [B, L] must equal `want`. The one escape: the *first* mismatch sits on a
// position whose fixture gap is below kNearTieGap, and the fixture allows near-ties at all
// (`near_ties_possible`: false for tiny/, whose smallest gap is 7.9e-4, so any mismatch there is a
// failure). Then every token before it has matched, the near-tie is reported, and the caller
// skips what depends on the later tokens (the image).
inline TokenParity expect_tokens(const Tensor& got, const Tensor& want, const Tensor& gap, bool near_ties_possible,
                                 const std::string& what) {
  EXPECT_EQ(got.dtype(), DType::i64) << what;
  EXPECT_EQ(got.shape(), want.shape()) << what << ": token shape";
  EXPECT_EQ(gap.shape(), want.shape()) << what << ": the fixture's gap and tokens differ in shape";
  if (got.dtype() != DType::i64 || got.shape() != want.shape() || gap.shape() != want.shape())
    return TokenParity::mismatch;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const int64_t g = got.data<int64_t>()[i], w = want.data<int64_t>()[i];
    if (g == w) continue;
    const float margin = gap.data<float>()[i];
    if (near_ties_possible && margin < kNearTieGap) {
      std::cerr << what << ": near-tie at flat position " << i << " (reference gap " << margin << ", got " << g
                << ", want " << w << "); the " << i << " tokens before it are identical\n";
      return TokenParity::near_tie;
    }
    ADD_FAILURE() << what << ": token mismatch at flat position " << i << ": got " << g << ", want " << w
                  << " (reference gap " << margin << (near_ties_possible ? "" : "; this fixture has no near-ties")
                  << ")";
    return TokenParity::mismatch;
  }
  return TokenParity::identical;
}

}  // namespace varcode::test
