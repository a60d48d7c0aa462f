// Gradient buckets: a deterministic partition of the flat gradient buffer in backward order, and
// the readiness tracker that releases buckets strictly in that order.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>

#include "model/grad_buckets.h"

using namespace gfwa;

namespace {

std::vector<ParamTensor> tensors_of(const std::vector<size_t>& numels) {
  std::vector<ParamTensor> out;
  size_t off = 0;
  for (size_t i = 0; i < numels.size(); ++i) {
    ParamTensor t;
    t.name = "t" + std::to_string(i);
    t.shape = {int(numels[i])};
    t.offset = off;
    t.numel = numels[i];
    off += numels[i];
    out.push_back(t);
  }
  return out;
}

ModelConfig random_model(std::mt19937_64& rng) {
  ModelConfig m;
  m.vocab_size = 97 + int(rng() % 400);
  m.n_heads = 1 + int(rng() % 4);
  m.d_model = m.n_heads * (4 + 2 * int(rng() % 6));
  m.n_layers = 1 + int(rng() % 5);
  m.ffn_hidden = rng() % 2 ? 0 : 3 + int(rng() % 50);
  m.attention.mode = std::array<AttnMode, 3>{AttnMode::full, AttnMode::swa, AttnMode::gatedfwa}[rng() % 3];
  m.attention.token_shift = rng() % 2;
  return m;
}

// Every property a plan must have, whatever the layout and cap.
void check_plan(const std::vector<ParamTensor>& ts, const std::vector<GradBucket>& bs, size_t cap_bytes,
                size_t elem_bytes) {
  const size_t cap = cap_bytes / elem_bytes;
  const size_t total = ts.back().offset + ts.back().numel;
  ASSERT_FALSE(bs.empty());
  EXPECT_EQ(bs.front().end, total);  // backward's first gradients go first
  EXPECT_EQ(bs.front().last_tensor, int(ts.size()) - 1);
  EXPECT_EQ(bs.back().begin, 0u);
  EXPECT_EQ(bs.back().first_tensor, 0);
  for (size_t k = 0; k < bs.size(); ++k) {
    const GradBucket& b = bs[k];
    ASSERT_LE(b.first_tensor, b.last_tensor);
    EXPECT_EQ(b.begin, ts[size_t(b.first_tensor)].offset);
    EXPECT_EQ(b.end, ts[size_t(b.last_tensor)].offset + ts[size_t(b.last_tensor)].numel);
    if (b.first_tensor != b.last_tensor) {
      EXPECT_LE(b.end - b.begin, cap) << "bucket " << k;
    }
    if (k + 1 < bs.size()) {
      EXPECT_EQ(bs[k + 1].end, b.begin);  // contiguous, descending, no gap or overlap
      EXPECT_EQ(bs[k + 1].last_tensor, b.first_tensor - 1);
      // greedy: the next tensor down did not fit
      EXPECT_GT(b.end - b.begin + ts[size_t(b.first_tensor - 1)].numel, cap) << "bucket " << k;
    }
  }
}

}  // namespace

TEST(GradBuckets, HandWorkedExample) {
  // sizes 10 5 7 3, cap 12: walking down, 3+7 = 10 fits, +5 does not; 5 alone; 10 alone.
  const auto ts = tensors_of({10, 5, 7, 3});
  const auto bs = plan_grad_buckets(ts, 12, 1);
  ASSERT_EQ(bs.size(), 3u);
  EXPECT_EQ(bs[0].begin, 15u);
  EXPECT_EQ(bs[0].end, 25u);
  EXPECT_EQ(bs[0].first_tensor, 2);
  EXPECT_EQ(bs[0].last_tensor, 3);
  EXPECT_EQ(bs[1].begin, 10u);
  EXPECT_EQ(bs[1].end, 15u);
  EXPECT_EQ(bs[2].begin, 0u);
  EXPECT_EQ(bs[2].end, 10u);
  // fp32 halves what fits in the same bytes: 48 bytes = 12 floats, bf16: 24 elements.
  EXPECT_EQ(plan_grad_buckets(ts, 48, 4).size(), 3u);
  EXPECT_EQ(plan_grad_buckets(ts, 48, 2).size(), 2u);
  EXPECT_EQ(plan_grad_buckets(ts, 1000, 2).size(), 1u);
}

TEST(GradBuckets, OversizedTensorsStandAlone) {
  const auto ts = tensors_of({50, 2, 2, 40, 1});
  const auto bs = plan_grad_buckets(ts, 8, 1);
  check_plan(ts, bs, 8, 1);
  ASSERT_EQ(bs.size(), 4u);
  EXPECT_EQ(bs[0].first_tensor, 4);  // 1 alone: the 40 after it does not fit
  EXPECT_EQ(bs[1].first_tensor, 3);
  EXPECT_EQ(bs[2].first_tensor, 1);  // 2 + 2
  EXPECT_EQ(bs[3].first_tensor, 0);
}

TEST(GradBuckets, RandomLayoutsAndCaps) {
  for (uint64_t seed : {21u, 22u, 23u, 24u, 25u, 26u, 27u, 28u, 29u, 30u}) {
    std::mt19937_64 rng(seed);
    const ParamLayout layout(random_model(rng));
    const size_t elem = rng() % 2 ? 2 : 4;
    const size_t cap = elem * (1 + rng() % (layout.total() / 3 + 1));
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto bs = plan_grad_buckets(layout.tensors(), cap, elem);
    check_plan(layout.tensors(), bs, cap, elem);
    const auto again = plan_grad_buckets(layout.tensors(), cap, elem);
    ASSERT_EQ(again.size(), bs.size());
    for (size_t k = 0; k < bs.size(); ++k) EXPECT_EQ(again[k].begin, bs[k].begin);
  }
}

TEST(GradBuckets, DefaultModelAndCap) {
  ModelConfig m;  // the 124m-class default: 25 MiB buckets (distributed.bucket_mb) of bf16 gradients
  const ParamLayout layout(m);
  const auto bs = plan_grad_buckets(layout.tensors(), size_t(25) << 20, 2);
  check_plan(layout.tensors(), bs, size_t(25) << 20, 2);
  EXPECT_EQ(bs.back().first_tensor, 0);
  EXPECT_EQ(bs.back().last_tensor, 0);  // the 77 MB embedding is a bucket of its own, launched last
  EXPECT_GT(bs.size(), 3u);
}

TEST(GradBuckets, RejectsGapsInTheLayout) {
  auto ts = tensors_of({4, 4});
  ts[1].offset = 5;
  EXPECT_THROW(plan_grad_buckets(ts, 8, 1), std::invalid_argument);
}

TEST(BucketReadiness, ReleasesInLaunchOrderOnly) {
  for (uint64_t seed : {41u, 42u, 43u, 44u, 45u}) {
    std::mt19937_64 rng(seed);
    const ParamLayout layout(random_model(rng));
    const auto& ts = layout.tensors();
    const auto bs = plan_grad_buckets(ts, 4 * (1 + rng() % 2000), 4);
    BucketReadiness ready(bs, ts.size());
    for (int pass = 0; pass < 2; ++pass) {  // reset() makes a second backward pass behave the same
      ready.reset();
      // backward order with local shuffles: gradients need not finish exactly in reverse layout order
      std::vector<int> order(ts.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = int(ts.size() - 1 - i);
      for (size_t i = 0; i + 1 < order.size(); ++i)
        if (rng() % 3 == 0) std::swap(order[i], order[i + rng() % std::min<size_t>(6, order.size() - i)]);
      std::vector<bool> done(ts.size(), false);
      int next = 0;
      for (int t : order) {
        EXPECT_FALSE(ready.all_released());
        done[size_t(t)] = true;
        for (int b : ready.mark_ready(t)) {
          EXPECT_EQ(b, next++);
          for (int u = bs[size_t(b)].first_tensor; u <= bs[size_t(b)].last_tensor; ++u) EXPECT_TRUE(done[size_t(u)]);
        }
      }
      EXPECT_EQ(next, int(bs.size()));
      EXPECT_TRUE(ready.all_released());
    }
    EXPECT_THROW(ready.mark_ready(0), std::logic_error);  // already marked in this pass
    EXPECT_THROW(ready.mark_ready(int(ts.size())), std::out_of_range);
  }
}

TEST(BucketReadiness, RejectsBucketsThatDoNotPartition) {
  const auto ts = tensors_of({3, 3, 3});
  auto bs = plan_grad_buckets(ts, 3, 1);
  bs.pop_back();
  EXPECT_THROW(BucketReadiness(bs, ts.size()), std::invalid_argument);
}
