// ZeRO-1 shard partitioning (coverage, disjointness, alignment, padding), the per-tensor pieces of
// a shard, and the per-rank checkpoint rules.
#include <gtest/gtest.h>

#include <random>

#include "dist/checkpoint_ranks.h"
#include "dist/dist_error.h"
#include "model/zero1_shards.h"

using namespace gfwa;
using namespace gfwa::dist;

namespace {

void check_plan(const ShardPlan& p, size_t total, int world, size_t align) {
  EXPECT_EQ(p.total, total);
  EXPECT_EQ(p.world, world);
  EXPECT_EQ(p.shard % align, 0u);
  EXPECT_GT(p.shard, 0u);
  EXPECT_GE(p.padded(), total);
  const size_t need = (total + size_t(world) - 1) / size_t(world);
  EXPECT_LT(p.shard, std::max<size_t>(need, 1) + align);  // the smallest aligned size that covers
  EXPECT_EQ(p.begin(0), 0u);
  EXPECT_EQ(p.end(world - 1), total);
  size_t covered = 0;
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(p.begin(r), covered) << "rank " << r;  // contiguous and disjoint
    EXPECT_LE(p.owned(r), p.shard);
    if (p.end(r) < total) {
      EXPECT_EQ(p.owned(r), p.shard);  // only the tail is short
    }
    covered = p.end(r);
  }
  EXPECT_EQ(covered, total);
}

}  // namespace

TEST(Zero1Shards, RandomSizes) {
  for (uint64_t seed : {51u, 52u, 53u, 54u, 55u, 56u, 57u, 58u, 59u, 60u, 61u, 62u}) {
    std::mt19937_64 rng(seed);
    const size_t total = 1 + rng() % (seed % 2 ? 1000 : 200000000);
    const int world = 1 + int(rng() % 16);
    SCOPED_TRACE("seed " + std::to_string(seed));
    const ShardPlan p = plan_shards(total, world);
    check_plan(p, total, world, kShardAlign);
    EXPECT_LT(p.padded() - total, kShardAlign * size_t(world));
    const size_t align = 1 + rng() % 40;
    check_plan(plan_shards(total, world, align), total, world, align);
  }
}

TEST(Zero1Shards, WorkedExamples) {
  const ShardPlan p = plan_shards(1000, 3);  // 334 per rank rounds up to 384
  EXPECT_EQ(p.shard, 384u);
  EXPECT_EQ(p.padded(), 1152u);
  EXPECT_EQ(p.begin(1), 384u);
  EXPECT_EQ(p.end(2), 1000u);
  EXPECT_EQ(p.owned(2), 232u);
  const ShardPlan tiny = plan_shards(100, 4);  // tiny model: ranks 1-3 own only padding
  EXPECT_EQ(tiny.shard, 128u);
  EXPECT_EQ(tiny.owned(0), 100u);
  EXPECT_EQ(tiny.owned(3), 0u);
  EXPECT_EQ(plan_shards(0, 2).shard, 128u);  // NCCL counts stay positive
  EXPECT_EQ(plan_shards(256, 1).padded(), 256u);
  EXPECT_THROW(plan_shards(10, 0), std::invalid_argument);
}

TEST(Zero1Shards, PiecesTileEachShardAndEachTensor) {
  for (uint64_t seed : {71u, 72u, 73u}) {
    std::mt19937_64 rng(seed);
    ModelConfig m;
    m.vocab_size = 50 + int(rng() % 300);
    m.n_heads = 2;
    m.d_model = 2 * (3 + int(rng() % 9));
    m.n_layers = 1 + int(rng() % 4);
    const ParamLayout layout(m);
    const int world = 1 + int(rng() % 7);
    const ShardPlan plan = plan_shards(layout.total(), world);
    std::vector<size_t> seen(layout.tensors().size(), 0);
    for (int r = 0; r < world; ++r) {
      size_t at = plan.begin(r);
      for (const ShardPiece& p : shard_pieces(layout.tensors(), plan, r)) {
        const ParamTensor& t = layout.tensors()[size_t(p.tensor)];
        EXPECT_EQ(p.begin, at);  // in order, no gaps
        EXPECT_GE(p.begin, t.offset);
        EXPECT_LE(p.end, t.offset + t.numel);
        EXPECT_LT(p.begin, p.end);
        seen[size_t(p.tensor)] += p.end - p.begin;
        at = p.end;
      }
      EXPECT_EQ(at, plan.end(r));
    }
    for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], layout.tensors()[i].numel) << layout.tensors()[i].name;
    EXPECT_THROW(shard_pieces(layout.tensors(), plan, world), std::out_of_range);
  }
}

TEST(CheckpointRanks, NamesAndWorldRule) {
  EXPECT_EQ(rank_state_name(3, 4), "rank-00003-of-00004");
  EXPECT_EQ(rank_state_name(0, 1), "rank-00000-of-00001");
  EXPECT_NO_THROW(require_same_world("runs/a/step_000100", 4, 4));
  try {
    require_same_world("runs/a/step_000100", 4, 2);
    FAIL() << "world change accepted";
  } catch (const DistError& e) {
    EXPECT_EQ(std::string(e.what()),
              "checkpoint runs/a/step_000100 was written by 4 ranks, this run has 2: resume it with 4 processes "
              "(optimizer shards and data-loader slices are per rank; resharding is not supported)");
  }
  EXPECT_THROW(require_same_world("c", 1, 2), DistError);
}
