// Thread safety: threads sharing one Generator make exactly the images one thread makes, and the
// process-wide thread budget (runtime.hpp) holds on every request thread. scripts/test.sh also
// builds this file alone under ThreadSanitizer (varcode_thread_tests). There each request runs a
// one-thread OpenMP team (set_threads_per_request(1)): libgomp is not instrumented, so its
// barriers inside a team would read as races; one-thread teams never reach them, while the
// requests still run concurrently on the shared weights.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <tuple>
#include <vector>

#include "test_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/io.hpp"
#include "varcode/runtime.hpp"
#include "varcode/vqvae.hpp"

namespace varcode {

namespace {
ModelFiles tiny_pair() {
  ModelFiles f;
  f.vae = test::fixture("tiny/vae.pth");
  f.drafter = test::fixture("tiny/drafter.pth");
  f.refiner = test::fixture("tiny/refiner.pth");
  f.draft_steps = 4;
  return f;
}

GenerateRequest request(int i) {
  GenerateRequest r;
  r.classes = {207 + i};
  r.seed = 100 + static_cast<uint64_t>(i);
  SamplingOptions s;
  s.top_k = 600;
  s.top_p = 0.96;
  s.temperature = {1.1};
  r.sampling = s;
  return r;
}

// Restores the default budget however the test ends.
struct BudgetScope {
  BudgetScope(int total, int per_request) {
    set_num_threads(total);
    set_threads_per_request(per_request);
  }
  ~BudgetScope() {
    set_threads_per_request(0);
    set_num_threads(0);
  }
};
}  // namespace

TEST(ThreadSafety, SharedGeneratorMatchesOneThread) {
  constexpr int kThreads = 3;  // small: under ThreadSanitizer this runs ~10x slower
  const BudgetScope scope(kThreads, 1);
  omp_set_num_threads(1);  // loading runs on this thread outside any request: one-thread teams too
  const Generator gen = Generator::open(tiny_pair(), ComputeDType::f32);
  const VqvaeModel vae = VqvaeModel::open(test::fixture("tiny/vae.pth"));
  Tensor both = load_npy(test::fixture("tiny/code_n4_tokens.npy"));                         // [2, 680]
  const Tensor tokens = Tensor::borrow(DType::i64, {1, both.dim(1)}, both.raw(), nullptr);  // [1, 680]
  std::vector<GenerateResult> want;
  for (int i = 0; i < kThreads; ++i) want.push_back(gen.generate(request(i)));
  const Tensor want_decoded = vae.decode_tokens(tokens);

  std::vector<GenerateResult> got(kThreads);
  std::vector<Tensor> decoded(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] {
      got[static_cast<size_t>(i)] = gen.generate(request(i));
      decoded[static_cast<size_t>(i)] = vae.decode_tokens(tokens);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    const GenerateResult& g = got[static_cast<size_t>(i)];
    const GenerateResult& w = want[static_cast<size_t>(i)];
    ASSERT_EQ(g.tokens.shape(), w.tokens.shape());
    for (int64_t k = 0; k < w.tokens.numel(); ++k)
      ASSERT_EQ(g.tokens.data<int64_t>()[k], w.tokens.data<int64_t>()[k]) << "thread " << i << ", token " << k;
    // Same team size (1) on both sides, so the same summation order: identical images.
    EXPECT_EQ(test::max_abs_diff(g.images, w.images), 0.0) << "thread " << i;
    EXPECT_EQ(test::max_abs_diff(decoded[static_cast<size_t>(i)], want_decoded), 0.0) << "thread " << i;
  }
}

// set_num_threads is process-wide: a request on another thread runs within it (OpenMP's team size
// is per thread, so this thread's omp_set_num_threads alone never reached it), and the
// per-request cap holds.
TEST(ThreadSafety, ThreadBudgetReachesEveryRequestThread) {
  const Generator gen = Generator::open(tiny_pair(), ComputeDType::f32);
  for (const auto& [total, cap, want] : {std::tuple{1, 0, 1}, std::tuple{3, 1, 1}, std::tuple{2, 0, 2}}) {
    const BudgetScope scope(total, cap);
    EXPECT_EQ(num_threads(), total);
    std::atomic<int> most{0};
    std::thread t([&] {
      GenerateRequest r = request(0);
      r.classes = {1};
      gen.generate(r, [&](const ProgressEvent&) { most = std::max(most.load(), omp_get_max_threads()); });
    });
    t.join();
    EXPECT_EQ(most.load(), want) << "budget " << total << ", cap " << cap;
  }
}

}  // namespace varcode
