// Checkpoints of data-parallel runs: every rank's part is written into one temporary directory,
// a checkpoint is valid only when every part is there and intact, and parts read back bit for bit.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "train/checkpoint.h"

namespace gfwa {
namespace {
namespace fs = std::filesystem;

std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class DistCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() / ("gfwa_dist_ckpt_" + std::to_string(::getpid()))).string();
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A 3-rank ZeRO-1 checkpoint of 1001 parameters: shards [0, 384), [384, 768), [768, 1001).
  std::string save(int64_t step) {
    CheckpointData ck;
    ck.config = {{"model", {{"n_layers", 1}}}};
    ck.params = random_floats(1001, uint64_t(step));
    ck.state = {{"step", step}, {"world", 3}, {"rank_parts", 3}};
    const std::string tmp = checkpoint_temp_dir(root_, step, 4242);
    begin_checkpoint(root_, tmp);
    for (int r = 0; r < 3; ++r) {
      const size_t b = size_t(r) * 384, e = std::min<size_t>(1001, b + 384);
      parts_[r].state = {{"loader", {{"cursor", 10 * r + step}}}, {"shard", {{"begin", b}, {"end", e}}}};
      parts_[r].adam_m = random_floats(e - b, 100 + uint64_t(r));
      parts_[r].adam_v = random_floats(e - b, 200 + uint64_t(r));
      write_rank_part(tmp, r, 3, parts_[r]);
    }
    write_checkpoint_files(tmp, ck);
    return commit_checkpoint(root_, step, tmp);
  }

  std::string root_;
  RankPart parts_[3];
};

TEST_F(DistCheckpoint, PartsReadBackExactly) {
  const std::string dir = save(5);
  EXPECT_EQ(dir, root_ + "/step_00000005");
  EXPECT_EQ(checkpoint_problem(dir), "");
  EXPECT_FALSE(fs::exists(dir + "/optimizer.bin"));
  const CheckpointData ck = load_checkpoint(dir);
  EXPECT_TRUE(ck.adam_m.empty());
  EXPECT_EQ(ck.params.size(), 1001u);
  for (int r = 0; r < 3; ++r) {
    const RankPart p = load_rank_part(dir, r, 3);
    EXPECT_EQ(p.state, parts_[r].state) << r;
    EXPECT_TRUE(same_bits(p.adam_m, parts_[r].adam_m)) << r;
    EXPECT_TRUE(same_bits(p.adam_v, parts_[r].adam_v)) << r;
  }
  EXPECT_THROW(load_rank_part(dir, 1, 4), CheckpointError);  // another world's name: absent
}

TEST_F(DistCheckpoint, MissingOrDamagedPartMakesItIncomplete) {
  save(3);
  const std::string dir = save(6);
  ASSERT_EQ(find_latest_valid(root_), dir);

  fs::rename(dir + "/rank-00002-of-00003.json", root_ + "/aside.json");
  EXPECT_NE(checkpoint_problem(dir).find("rank-00002-of-00003.json"), std::string::npos) << checkpoint_problem(dir);
  EXPECT_EQ(find_latest_valid(root_), root_ + "/step_00000003");
  EXPECT_THROW(load_checkpoint(dir), CheckpointError);
  fs::rename(root_ + "/aside.json", dir + "/rank-00002-of-00003.json");
  ASSERT_EQ(checkpoint_problem(dir), "");

  {  // one flipped byte in a shard
    std::fstream f(dir + "/rank-00001-of-00003.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(77);
    f.put('\x5a');
  }
  EXPECT_NE(checkpoint_problem(dir).find("rank-00001-of-00003.bin fails its SHA-256"), std::string::npos)
      << checkpoint_problem(dir);
  EXPECT_THROW(load_rank_part(dir, 1, 3), CheckpointError);
  EXPECT_EQ(find_latest_valid(root_), root_ + "/step_00000003");
}

TEST_F(DistCheckpoint, DiscardedSaveLeavesNothing) {
  const std::string tmp = checkpoint_temp_dir(root_, 9, 4242);
  begin_checkpoint(root_, tmp);
  RankPart p;
  p.state = {{"loader", 1}};
  write_rank_part(tmp, 0, 2, p);
  EXPECT_FALSE(fs::exists(tmp + "/rank-00000-of-00002.bin"));  // no shard, no .bin
  discard_checkpoint(tmp);
  EXPECT_TRUE(fs::is_empty(root_));
}

}  // namespace
}  // namespace gfwa
