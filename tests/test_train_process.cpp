// The gfwa binary under signals: SIGTERM mid-run gives a resumable checkpoint and exit status 75,
// and the resumed run matches one that never stopped. Also `gfwa eval` on a checkpoint.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "train/checkpoint.h"
#include "train/signals.h"
#include "cuda_test_util.h"
#include "test_gfwa_process.h"
#include "train/trainer.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;
using namespace testing_process;

// Waits until out/metrics.jsonl holds n train records (at most 30 s).
void wait_for_steps(const std::string& out, size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (records(out, "train").size() < n && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

class TrainProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fresh_dir(std::string("proc_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    write_shards(root_, 7);
    // Constant lr, so the schedule does not depend on max_steps; checkpoints only at the end and on
    // signals; long enough that SIGTERM always lands mid-run.
    auto j = tiny_config(root_);
    j["schedule"] = {{"type", "constant"}, {"warmup_steps", 0}};
    j["train"]["max_steps"] = 1000000;
    j["checkpoint"]["every"] = 0;
    j["eval"]["every"] = 0;
    config_ = root_ + "/tiny.json";
    std::ofstream(config_) << j.dump(2);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_, config_;
};

TEST_F(TrainProcess, SigtermWritesAResumableCheckpointAndExits75) {
  const std::string out = root_ + "/run", log = root_ + "/run.log";
  const pid_t pid = spawn({"train", "--config", config_, "--out", out}, log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (records(out, "train").size() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ::kill(pid, SIGTERM);
  ASSERT_EQ(exit_status(pid), kExitPreempted) << file_bytes(log);
  EXPECT_NE(file_bytes(log).find("stopped by signal 15"), std::string::npos) << file_bytes(log);

  const auto latest = find_latest_valid(out + "/checkpoints");
  ASSERT_TRUE(latest.has_value()) << file_bytes(log);
  const int64_t stopped = load_checkpoint(*latest).state.at("step");
  ASSERT_GE(stopped, 3);
  const std::string end = std::to_string(stopped + 4);

  ASSERT_EQ(run_gfwa({"train", "--config", config_, "--out", out, "--resume", "auto", "--set",
                      "train.max_steps=" + end, "--set", "logging.level=info"}, log), 0) << file_bytes(log);
  EXPECT_NE(file_bytes(log).find("resuming from " + *latest), std::string::npos) << file_bytes(log);
  const std::string ref = root_ + "/ref";
  ASSERT_EQ(run_gfwa({"train", "--config", config_, "--out", ref, "--set", "train.max_steps=" + end}, root_ + "/ref.log"), 0)
      << file_bytes(root_ + "/ref.log");

  const std::string step_dir = "/checkpoints/" + checkpoint_dir_name(stopped + 4);
  for (const char* f : {"/model.bin", "/optimizer.bin"})
    EXPECT_TRUE(file_bytes(out + step_dir + f) == file_bytes(ref + step_dir + f)) << f << " differs";
  const auto a = records(out, "train"), b = records(ref, "train");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].at("loss"), b[i].at("loss")) << "step " << i + 1;
  EXPECT_EQ(records(out, "eval").back().at("val_loss"), records(ref, "eval").back().at("val_loss"));
}

// Issue 20: a second trainer into the folder of a running one is refused at once, naming the
// holder; the running one is not disturbed.
TEST_F(TrainProcess, ConcurrentStartIntoTheSameFolderIsRefused) {
  const std::string out = root_ + "/run", log = root_ + "/run.log", log2 = root_ + "/second.log";
  const pid_t first = spawn({"train", "--config", config_, "--out", out}, log);
  wait_for_steps(out, 2);
  EXPECT_EQ(run_gfwa({"train", "--config", config_, "--out", out, "--resume", "auto"}, log2), 2);
  EXPECT_NE(file_bytes(log2).find(out + " is in use by pid " + std::to_string(first) + " on host "),
            std::string::npos)
      << file_bytes(log2);
  ::kill(first, SIGTERM);
  ASSERT_EQ(exit_status(first), kExitPreempted) << file_bytes(log);
  const auto steps = records(out, "train");
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i].at("step"), int(i + 1));  // each step once
}

// Issue 20: a shard truncated under a running trainer stops it like a signal does, with a
// checkpoint and exit status 74, naming the shard (it used to die of SIGBUS, without a word).
TEST_F(TrainProcess, ShardTruncatedWhileTrainingStopsWithACheckpoint) {
  const std::string out = root_ + "/run", log = root_ + "/run.log";
  const pid_t pid = spawn({"train", "--config", config_, "--out", out, "--set", "logging.level=info"}, log);
  wait_for_steps(out, 3);
  for (const char* shard : {"/train_000.bin", "/train_001.bin"}) fs::resize_file(root_ + shard, 1024 + 2 * 12);
  ASSERT_EQ(exit_status(pid), kExitDataError) << file_bytes(log);
  const std::string text = file_bytes(log);
  EXPECT_NE(text.find(root_ + "/train_00"), std::string::npos) << text;
  EXPECT_NE(text.find("exit status 74"), std::string::npos) << text;
  const auto latest = find_latest_valid(out + "/checkpoints");
  ASSERT_TRUE(latest.has_value()) << text;
  EXPECT_EQ(load_checkpoint(*latest).state.at("step"), records(out, "train").back().at("step")) << text;
}

// Issue 20: the cpu backend under a 2-process launcher says it cannot run distributed before it
// says anything about the launcher's variables.
TEST_F(TrainProcess, CpuBackendRefusesSeveralProcessesFirst) {
  const std::string log = root_ + "/err.log";
  EXPECT_EQ(run_gfwa({"train", "--config", config_, "--out", root_ + "/x"}, log, "",
                     {"RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0"}),
            2);
  EXPECT_NE(file_bytes(log).find("train.backend=cpu: data-parallel training (2 processes) needs the cuda backend"),
            std::string::npos)
      << file_bytes(log);
  EXPECT_EQ(file_bytes(log).find("MASTER_ADDR"), std::string::npos) << file_bytes(log);
}

TEST_F(TrainProcess, EvalCommandReportsTheSavedModel) {
  const std::string out = root_ + "/run", log = root_ + "/run.log";
  ASSERT_EQ(run_gfwa({"train", "--config", config_, "--out", out, "--set", "train.max_steps=2"}, log), 0)
      << file_bytes(log);
  const auto final_eval = records(out, "eval").back();
  ASSERT_EQ(run_gfwa({"eval", "--checkpoint", out + "/checkpoints/step_00000002"}, log), 0) << file_bytes(log);
  const std::string text = file_bytes(log);
  char want[64];
  std::snprintf(want, sizeof want, "val loss %.4f", final_eval.at("val_loss").get<double>());
  EXPECT_NE(text.find(want), std::string::npos) << text;
  EXPECT_NE(text.find("99 tokens in 3 batches"), std::string::npos) << text;
  // The whole split: 611 tokens hold 55 windows of 11, 18 batches of 3.
  ASSERT_EQ(run_gfwa({"eval", "--checkpoint", out + "/checkpoints/step_00000002", "--batches", "0"}, log), 0);
  EXPECT_NE(file_bytes(log).find("594 tokens in 18 batches"), std::string::npos) << file_bytes(log);
}

#ifdef GFWA_WITH_CUDA
// `eval --json` on stdout is one JSON document: the cuda backend's notes (its memory plan) go to
// stderr, so scripts can parse stdout whole.
TEST_F(TrainProcess, EvalJsonOnStdoutIsOneDocumentOnTheGpu) {
  GFWA_SKIP_WITHOUT_GPU();
  const std::string out = root_ + "/run", log = root_ + "/run.log", err = root_ + "/err.log";
  ASSERT_EQ(run_gfwa({"train", "--config", config_, "--out", out, "--set", "train.max_steps=1", "--set",
                      "train.backend=cuda", "--set", "model.d_model=128"},  // head_dim 64
                     log),
            0)
      << file_bytes(log);
  ASSERT_EQ(run_gfwa({"eval", "--checkpoint", out + "/checkpoints/step_00000001", "--json"}, log, err), 0)
      << file_bytes(err);
  const auto j = nlohmann::json::parse(file_bytes(log), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << "stdout:\n" << file_bytes(log);
  EXPECT_TRUE(j.contains("loss")) << j.dump();
  EXPECT_NE(file_bytes(err).find("memory plan"), std::string::npos) << file_bytes(err);
}
#endif

TEST_F(TrainProcess, ErrorsAreOneLineWithStatus2) {
  const std::string log = root_ + "/err.log";
  EXPECT_EQ(run_gfwa({"train", "--config", config_, "--out", root_ + "/x", "--resume", root_ + "/nowhere"}, log), 2);
  EXPECT_NE(file_bytes(log).find("no valid checkpoint"), std::string::npos) << file_bytes(log);
  EXPECT_EQ(run_gfwa({"train", "--config", config_, "--set", "train.backend=tpu"}, log), 2);
  EXPECT_NE(file_bytes(log).find("train.backend"), std::string::npos) << file_bytes(log);
}

}  // namespace
}  // namespace gfwa
