// The trainer's data-parallel rules that need no GPU: the cpu backend refuses a multi-process
// launch, a checkpoint resumes only with the world size that wrote it, a checkpoint whose optimizer
// state lives in rank parts resumes bit for bit, and the cross-rank decisions (stop, success).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/sha256.h"
#include "train/checkpoint.h"
#include "dist/group.h"
#include "train/trainer.h"
#include "test_train_dist_util.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;

std::string ckpt(const std::string& out, int step) { return out + "/checkpoints/" + checkpoint_dir_name(step); }

class TrainDist : public TrainFixture {
 protected:
  TrainDist() : TrainFixture(7) {}
};

TEST_F(TrainDist, CpuBackendRefusesSeveralProcesses) {
  const auto env = launch_env(1, 2, 1);  // rank 0 never runs: the refusal must come before any wait
  const std::string out = root_ + "/out";
  try {
    train(cfg_of(tiny_config(data_)), {out, ""});
    ADD_FAILURE() << "a 2-process cpu launch was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("train.backend=cpu: data-parallel training (2 processes) needs the cuda "
                                         "backend"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(out + "/checkpoints"));
}

// A single-process cpu run under a launcher (world 1) is an ordinary run.
TEST_F(TrainDist, CpuBackendRunsUnderAOneProcessLaunch) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  ASSERT_EQ(train(cfg_of(j), {root_ + "/plain", ""}), 0);
  {
    const auto env = launch_env(0, 1, 1);
    ASSERT_EQ(train(cfg_of(j), {root_ + "/launched", ""}), 0);
  }
  EXPECT_EQ(file_bytes(ckpt(root_ + "/plain", 3) + "/model.bin"), file_bytes(ckpt(root_ + "/launched", 3) + "/model.bin"));
  EXPECT_FALSE(fs::exists(ckpt(root_ + "/launched", 3) + "/rank-00000-of-00001.json"));
}

// Rewrites state.json with `edit` applied, keeping its checksum valid.
template <class F>
void edit_state(const std::string& dir, F edit) {
  std::ifstream in(dir + "/state.json");
  nlohmann::json s = nlohmann::json::parse(in);
  s.erase("self_sha256");
  edit(s);
  s["self_sha256"] = sha256_hex(s.dump());
  std::ofstream(dir + "/state.json", std::ios::trunc) << s.dump(2) << '\n';
}

TEST_F(TrainDist, ResumeWithAnotherWorldSizeIsRefused) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  edit_state(ckpt(a, 3), [](nlohmann::json& s) { s["world"] = 4; });
  ASSERT_TRUE(checkpoint_problem(ckpt(a, 3)).empty());
  j["train"]["max_steps"] = 6;
  try {
    train(cfg_of(j), {root_ + "/b", ckpt(a, 3)});
    ADD_FAILURE() << "a 4-rank checkpoint resumed with 1 process";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("was written by 4 ranks, this run has 1: resume it with 4 processes"),
              std::string::npos)
        << e.what();
  }
}

// A ZeRO-1 style checkpoint (no optimizer.bin; the moments and the loader position in the rank
// parts) resumes exactly like the ordinary checkpoint it was made from.
void expect_rank_part_resume(const nlohmann::json& j, const std::string& root) {
  const std::string a = root + "/a", b = root + "/b", parts = root + "/parts";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  CheckpointData ck = load_checkpoint(ckpt(a, 3));
  RankPart p;
  p.state = {{"loader", ck.state.at("loader")}, {"shard", {{"begin", 0}, {"end", ck.params.size()}}}};
  p.adam_m = ck.adam_m;
  p.adam_v = ck.adam_v;
  ck.adam_m.clear();
  ck.adam_v.clear();
  ck.state["rank_parts"] = 1;
  ck.state["loader"] = nlohmann::json();  // must come from the rank part
  const std::string tmp = checkpoint_temp_dir(parts, 3, 1);
  begin_checkpoint(parts, tmp);
  write_rank_part(tmp, 0, 1, p);
  write_checkpoint_files(tmp, ck);
  const std::string dir = commit_checkpoint(parts, 3, tmp);
  ASSERT_TRUE(checkpoint_problem(dir).empty()) << checkpoint_problem(dir);
  EXPECT_FALSE(fs::exists(dir + "/optimizer.bin"));

  ASSERT_EQ(train(cfg_of(j), {b, dir}), 0);
  for (const char* f : {"/model.bin", "/optimizer.bin"})
    EXPECT_TRUE(file_bytes(ckpt(a, 9) + f) == file_bytes(ckpt(b, 9) + f)) << f;
}

TEST_F(TrainDist, RankPartCheckpointResumesBitIdentically) { expect_rank_part_resume(tiny_config(data_), root_); }

// Muon's momentum travels in the rank parts' m like AdamW's first moment.
TEST_F(TrainDist, RankPartCheckpointOfMuonResumesBitIdentically) {
  expect_rank_part_resume(muon_config(tiny_config(data_)), root_);
}

// A group of `world` ranks seen from one of them: the others contribute fixed values.
class FakeGroup final : public dist::Group {
 public:
  FakeGroup(int world, std::vector<double> others) : world_(world), others_(std::move(others)) {}
  int rank() const override { return 0; }
  int world() const override { return world_; }
  void sum(double* v, int n) override {
    ++calls;
    for (int i = 0; i < n; ++i)
      for (double o : others_) v[i] += o;
  }
  int calls = 0;

 private:
  int world_;
  std::vector<double> others_;
};

TEST(DistDecisions, StopAndSuccessAgreeAcrossRanks) {
  FakeGroup none(3, {0, 0}), one(3, {0, 1}), both(3, {1, 1});
  EXPECT_FALSE(dist::any_rank(none, false));
  EXPECT_TRUE(dist::any_rank(none, true));
  EXPECT_TRUE(dist::any_rank(one, false));  // a signal on another rank stops this one
  EXPECT_TRUE(dist::all_ranks(both, true));
  EXPECT_FALSE(dist::all_ranks(one, true));  // a rank that failed its checkpoint part
  EXPECT_FALSE(dist::all_ranks(both, false));
  EXPECT_EQ(none.calls, 2);
  dist::SingleProcess single;
  EXPECT_TRUE(dist::any_rank(single, true));
  EXPECT_FALSE(dist::all_ranks(single, false));
}

TEST(DistDecisions, DataParallelWhenALauncherSaysSo) {
  dist::DistEnv e;
  EXPECT_FALSE(dist::wants_data_parallel(e));
  e.launcher = "torchrun";
  EXPECT_TRUE(dist::wants_data_parallel(e));  // RANK=0 WORLD_SIZE=1: the 1-rank NCCL path
  e.launcher = "single";
  e.world = 2;
  EXPECT_TRUE(dist::wants_data_parallel(e));
}

}  // namespace
}  // namespace gfwa
