// Issue 20, in process: a corrupt checkpoint never displaces a good one, a folder whose
// checkpoints are all invalid is refused rather than restarted, one run per output folder,
// checkpoint state fields are checked, and a model too large for the host fails before allocating.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

#include "data/sha256.h"
#include "train/checkpoint.h"
#include "train/run_lock.h"
#include "train/trainer.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;

std::string ckpt(const std::string& out, int step) { return out + "/checkpoints/" + checkpoint_dir_name(step); }

void corrupt(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(37);
  f.put('\x7f');
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The message of the std::exception f throws; a test failure when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

class TrainReliability : public TrainFixture {
 protected:
  TrainReliability() : TrainFixture(23) {}
};

// The run of the issue: checkpoints 3, 6 and 9, the newest corrupt; a resume with keep_last = 1
// and a shorter schedule falls back to 6 and saves 7. Before, pruning counted the corrupt 9 as the
// one to keep and deleted 6 and 7, and the next --resume auto started from scratch.
TEST_F(TrainReliability, CorruptNewestCheckpointNeverDisplacesAGoodOne) {
  auto j = tiny_config(data_);
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  corrupt(ckpt(a, 9) + "/model.bin");
  j["checkpoint"]["keep_last"] = 1;
  j["checkpoint"]["every"] = 1;
  j["train"]["max_steps"] = 7;
  ASSERT_EQ(train(cfg_of(j), {a, "auto"}), 0);
  EXPECT_EQ(entries(a + "/checkpoints"), (std::vector<std::string>{"invalid-step_00000009", "step_00000007"}));
  EXPECT_TRUE(checkpoint_problem(ckpt(a, 7)).empty());
  EXPECT_NE(file_bytes(a + "/train.log").find("invalid-step_00000009"), std::string::npos) << file_bytes(a + "/train.log");
  // The next start continues from 7 (nothing left to do), not from scratch.
  ASSERT_EQ(train(cfg_of(j), {a, "auto"}), 0);
  EXPECT_EQ(records(a, "train").size(), 7u);
}

// Every checkpoint corrupt: --resume auto refuses, naming each, and touches nothing.
TEST_F(TrainReliability, AllCheckpointsInvalidIsRefusedNotRestarted) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 6;
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  corrupt(ckpt(a, 3) + "/optimizer.bin");
  corrupt(ckpt(a, 6) + "/state.json");
  const std::string metrics = file_bytes(a + "/metrics.jsonl"), model = file_bytes(ckpt(a, 6) + "/model.bin");
  const std::string msg = error_of([&] { train(cfg_of(j), {a, "auto"}); });
  EXPECT_NE(msg.find("no valid checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find(ckpt(a, 3) + " (optimizer.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find(ckpt(a, 6) + " (state.json"), std::string::npos) << msg;
  EXPECT_EQ(file_bytes(a + "/metrics.jsonl"), metrics);
  EXPECT_EQ(entries(a + "/checkpoints"), (std::vector<std::string>{"step_00000003", "step_00000006"}));
  EXPECT_EQ(file_bytes(ckpt(a, 6) + "/model.bin"), model);

  // Checkpoints set aside earlier count too: the folder is not a fresh start.
  fs::rename(ckpt(a, 3), a + "/checkpoints/invalid-step_00000003");
  fs::rename(ckpt(a, 6), a + "/checkpoints/invalid-step_00000006");
  const std::string msg2 = error_of([&] { train(cfg_of(j), {a, "auto"}); });
  EXPECT_NE(msg2.find(a + "/checkpoints/invalid-step_00000006"), std::string::npos) << msg2;
  EXPECT_NE(error_of([&] { train(cfg_of(j), {a, ""}); }).find("--resume auto"), std::string::npos);
}

// A state.json whose checksum is right but whose fields are not: the error names the file and field.
TEST_F(TrainReliability, BadStateFieldsNameTheFileAndField) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  const std::string path = ckpt(a, 3) + "/state.json";
  const nlohmann::json good = nlohmann::json::parse(file_bytes(path));
  auto write_state = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json s = good;
    s.erase("self_sha256");
    s[key] = value;
    s["self_sha256"] = sha256_hex(s.dump());
    std::ofstream(path) << s.dump(2);
  };
  j["train"]["max_steps"] = 6;
  const struct {
    const char* key;
    nlohmann::json value;
    const char* problem;
  } cases[] = {{"step", -3, "step: must be >= 0 (got -3)"},
               {"updates", 4, "updates: must be <= step 3 (got 4)"},
               {"tokens", "many", "tokens: expected an integer (got \"many\")"},
               {"bad_streak", -1, "bad_streak: must be >= 0 (got -1)"},
               {"sample_rng", 7, "sample_rng: expected a string"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    write_state(c.key, c.value);
    const std::string msg = error_of([&] { train(cfg_of(j), {a, "auto"}); });
    EXPECT_NE(msg.find(path + ": " + c.problem), std::string::npos) << msg;
  }
}

// Sizes far beyond the host's memory fail at once with the plan and the keys to change, not with
// std::bad_alloc (or minutes of allocating first).
TEST_F(TrainReliability, OversizedRunsFailOnTheMemoryPlan) {
  const struct {
    const char* section;
    const char* key;
    int value;
  } cases[] = {{"train", "seq_len", 1000000000},
               {"train", "batch_size", 1000000000},
               {"model", "vocab_size", 1000000000},
               {"model", "n_layers", 100000}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.key);
    auto j = tiny_config(data_);
    j[c.section][c.key] = c.value;
    j["train"]["tokens_per_step"] = 0;
    if (std::string(c.key) == "n_layers") j["model"]["d_model"] = 768;  // 100000 tiny layers would fit
    const auto t0 = std::chrono::steady_clock::now();
    const std::string msg = error_of([&] { train(cfg_of(j), {root_ + "/big", ""}); });
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
    EXPECT_NE(msg.find("cpu backend: the memory plan needs"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string(c.section) + "." + c.key), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(c.value)), std::string::npos) << msg;
  }
}

// One run per output folder: a held lock refuses a second trainer, naming the holder.
TEST_F(TrainReliability, ASecondRunIntoTheSameFolderIsRefused) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  const std::string a = root_ + "/a";
  {
    RunLock held(a);
    const std::string msg = error_of([&] { train(cfg_of(j), {a, "auto"}); });
    EXPECT_NE(msg.find(a + " is in use by pid " + std::to_string(::getpid())), std::string::npos) << msg;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    EXPECT_NE(msg.find(std::string("on host ") + host), std::string::npos) << msg;
    EXPECT_FALSE(fs::exists(a + "/metrics.jsonl"));
  }
  ASSERT_EQ(train(cfg_of(j), {a, "auto"}), 0);  // released: the folder is free again
  RunLock after(a);                               // and released again when the run ended
  EXPECT_EQ(after.stale_holder(), "");
}

// A holder killed without releasing (kill -9) leaves its lock free; the next holder says so.
TEST(TrainRunLock, StaleLockOfAKilledHolderIsDetected) {
  const std::string dir = fresh_dir("stale_lock");
  const pid_t child = ::fork();
  if (child == 0) {
    RunLock lock(dir);
    ::kill(::getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  RunLock lock(dir);
  EXPECT_NE(lock.stale_holder().find("pid " + std::to_string(child)), std::string::npos) << lock.stale_holder();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gfwa
