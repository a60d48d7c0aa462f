// The data-parallel trainer on a GPU through NCCL with one rank (RANK=0 WORLD_SIZE=1 ...): gradients
// go through the bucketed all-reduce (or ZeRO-1's reduce-scatter / sharded AdamW or Muon / all-gather), and
// the run must match the plain single-process run bit for bit, checkpoints and resume included.
// A launch whose other rank never starts must fail within distributed.timeout_s, naming who is
// missing. Skips without a GPU or without libnccl.
#ifdef GFWA_WITH_CUDA
#include <gtest/gtest.h>
#include <omp.h>

#include <filesystem>

#include "cuda_test_util.h"
#include "train/checkpoint.h"
#include "dist/dist_error.h"
#include "dist/nccl_library.h"
#include "train/trainer.h"
#include "test_train_dist_util.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;

std::string ckpt(const std::string& out, int step) { return out + "/checkpoints/" + checkpoint_dir_name(step); }

std::string nccl_problem() {
  try {
    dist::nccl();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A port per test, away from the other helpers' defaults.
int test_port(int k) { return 31000 + int(::getpid() % 4000) * 4 + k; }

class TrainDistCuda : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    GFWA_SKIP_WITHOUT_GPU();
    if (const std::string p = nccl_problem(); !p.empty()) GTEST_SKIP() << "NCCL cannot be loaded: " << p;
    omp_set_num_threads(1);
    root_ = fresh_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    data_ = root_ + "/data";
    fs::create_directories(data_);
    write_shards(data_, 31);
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }
  nlohmann::json config() const {
    auto j = tiny_config(data_);
    j["train"]["backend"] = "cuda";
    j["model"]["d_model"] = 128;  // head_dim 64, as the cuda kernels need
    j["distributed"]["zero1"] = GetParam();
    j["distributed"]["bucket_mb"] = 1;
    return j;
  }
  std::string root_, data_;
};

void expect_one_rank_matches_single_process(const RunConfig& cfg, bool zero1, const std::string& root) {
  const std::string plain = root + "/plain", nccl = root + "/nccl", resumed = root + "/resumed";
  ASSERT_EQ(train(cfg, {plain, ""}), 0);
  {
    const auto env = launch_env(0, 1, test_port(0));
    ASSERT_EQ(train(cfg, {nccl, ""}), 0);
  }
  for (int s : {3, 6, 9}) {
    const std::string a = ckpt(plain, s), b = ckpt(nccl, s);
    ASSERT_EQ(checkpoint_problem(b), "") << b;
    EXPECT_TRUE(file_bytes(a + "/model.bin") == file_bytes(b + "/model.bin")) << "step " << s;
    EXPECT_TRUE(fs::exists(b + "/rank-00000-of-00001.json"));
    EXPECT_EQ(fs::exists(b + "/rank-00000-of-00001.bin"), zero1);  // ZeRO-1: the shard is the rank's
    EXPECT_EQ(fs::exists(b + "/optimizer.bin"), !zero1);
    const CheckpointData ca = load_checkpoint(a), cb = load_checkpoint(b);
    EXPECT_EQ(ca.state.at("loader"), cb.state.at("loader"));
    EXPECT_EQ(cb.state.at("rank_parts"), 1);
  }
  const auto ta = records(plain, "train"), tb = records(nccl, "train");
  ASSERT_EQ(ta.size(), 9u);
  ASSERT_EQ(tb.size(), 9u);
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].at("loss"), tb[i].at("loss")) << "step " << i + 1;
    EXPECT_EQ(ta[i].at("grad_norm"), tb[i].at("grad_norm")) << "step " << i + 1;
  }
  const auto ea = records(plain, "eval"), eb = records(nccl, "eval");
  ASSERT_EQ(ea.size(), eb.size());
  for (size_t i = 0; i < ea.size(); ++i) EXPECT_EQ(ea[i].at("val_loss"), eb[i].at("val_loss"));

  // Resume the NCCL run at step 3 (its optimizer state from the rank part under ZeRO-1).
  {
    const auto env = launch_env(0, 1, test_port(1));
    ASSERT_EQ(train(cfg, {resumed, ckpt(nccl, 3)}), 0);
  }
  EXPECT_TRUE(file_bytes(ckpt(plain, 9) + "/model.bin") == file_bytes(ckpt(resumed, 9) + "/model.bin"));
}

TEST_P(TrainDistCuda, OneRankNcclMatchesSingleProcessBitwise) {
  expect_one_rank_matches_single_process(cfg_of(config()), GetParam(), root_);
}

// Muon: the momentum sharded like AdamW's moments, its update directions all-gathered for
// Newton-Schulz of whole matrices (cuda_backend_state.cpp), bit for bit the single-process run.
TEST_P(TrainDistCuda, OneRankNcclMatchesSingleProcessBitwiseWithMuon) {
  expect_one_rank_matches_single_process(cfg_of(muon_config(config())), GetParam(), root_);
}

INSTANTIATE_TEST_SUITE_P(Zero1, TrainDistCuda, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "zero1" : "allreduce"; });

class TrainDistCudaLaunch : public TrainDistCuda {};

// Rank 1 of 2 never starts: rank 0 gives up after timeout_s naming the missing rank and port;
// a rank 1 whose rank 0 never starts names the address it could not reach.
TEST_P(TrainDistCudaLaunch, MissingRankFailsFast) {
  auto j = config();
  j["distributed"]["timeout_s"] = 2;
  const RunConfig cfg = cfg_of(j);
  const int port = test_port(2 + int(GetParam()));
  const int rank = GetParam() ? 1 : 0;
  const std::string want = rank == 0 ? "rank 0: rank 1 did not connect to port " + std::to_string(port)
                                     : "rank 1: no answer from rank 0 at 127.0.0.1:" + std::to_string(port);
  const auto env = launch_env(rank, 2, port);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    train(cfg, {root_ + "/out", ""});
    ADD_FAILURE() << "a launch missing a rank trained";
  } catch (const dist::DistError& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  EXPECT_FALSE(fs::exists(root_ + "/out/checkpoints"));
}

INSTANTIATE_TEST_SUITE_P(Side, TrainDistCudaLaunch, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "rank1_alone" : "rank0_alone"; });

}  // namespace
}  // namespace gfwa
#endif
