#include <gtest/gtest.h>

#include "train/checkpoint.h"
#include "train/checkpointer.h"
#include "train/trainer.h"
#include "cuda_test_util.h"
#include "test_data_util.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;

std::string ckpt(const std::string& out, int step) { return out + "/checkpoints/" + checkpoint_dir_name(step); }

std::vector<double> losses_from(const std::string& out, int first_step) {
  std::vector<double> l;
  for (const auto& r : records(out, "train"))
    if (r.at("step").get<int>() >= first_step) l.push_back(r.at("loss").get<double>());
  return l;
}

void expect_same_model(const std::string& a, const std::string& b) {
  for (const char* f : {"/model.bin", "/optimizer.bin"}) {
    const std::string x = file_bytes(a + f), y = file_bytes(b + f);
    ASSERT_FALSE(x.empty()) << a << f;
    EXPECT_TRUE(x == y) << a << f << " and " << b << f << " differ";
  }
  EXPECT_EQ(load_checkpoint(a).state, load_checkpoint(b).state);
}

class TrainResume : public TrainFixture {
 protected:
  TrainResume() : TrainFixture(99) {}
};

// 9 steps with 2 micro-batches each, shuffled data that wraps into a second epoch: a run resumed at
// step 3 reproduces the losses, parameters, AdamW moments and loader state of the straight run.
void expect_bit_identical_resume(const RunConfig& cfg, const std::string& root) {
  const std::string a = root + "/a", b = root + "/b";
  ASSERT_EQ(train(cfg, {a, ""}), 0);
  const auto straight = losses_from(a, 1);
  ASSERT_EQ(straight.size(), 9u);
  EXPECT_LT(straight.back(), straight.front());
  for (int s : {3, 6, 9}) EXPECT_TRUE(checkpoint_problem(ckpt(a, s)).empty()) << s;
  EXPECT_EQ(load_checkpoint(ckpt(a, 9)).state.at("loader").at("epoch"), 1);

  ASSERT_EQ(train(cfg, {b, ckpt(a, 3)}), 0);
  const auto resumed = losses_from(b, 1);
  ASSERT_EQ(resumed.size(), 6u);
  for (size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i], straight[i + 3]) << "step " << i + 4;
  expect_same_model(ckpt(a, 9), ckpt(b, 9));
  const auto ea = records(a, "eval"), eb = records(b, "eval");
  ASSERT_EQ(ea.size(), 3u);  // steps 4, 8 and 9
  EXPECT_EQ(eb, ea);
}

TEST_F(TrainResume, ResumedRunIsBitIdentical) { expect_bit_identical_resume(cfg_of(tiny_config(data_)), root_); }

// Muon's momentum (kept in optimizer.bin's m) resumes exactly too.
TEST_F(TrainResume, ResumedMuonRunIsBitIdentical) {
  expect_bit_identical_resume(cfg_of(muon_config(tiny_config(data_))), root_);
}

#ifdef GFWA_WITH_CUDA
TEST_F(TrainResume, ResumedRunIsBitIdenticalOnCuda) {
  GFWA_SKIP_WITHOUT_GPU();
  auto j = tiny_config(data_);
  j["train"]["backend"] = "cuda";
  j["model"]["d_model"] = 128;  // head_dim 64, as the cuda kernels need
  expect_bit_identical_resume(cfg_of(j), root_);
}

TEST_F(TrainResume, ResumedMuonRunIsBitIdenticalOnCuda) {
  GFWA_SKIP_WITHOUT_GPU();
  auto j = muon_config(tiny_config(data_));
  j["train"]["backend"] = "cuda";
  j["model"]["d_model"] = 128;
  expect_bit_identical_resume(cfg_of(j), root_);
}
#endif

// Samples draw from a random stream that is part of the checkpoint: a resumed run prints the same.
TEST_F(TrainResume, SamplesResumeExactly) {
  if (!gfwa::testing::tokenizer_present())
    GTEST_SKIP() << "no " << gfwa::testing::tokenizer_dir() << "; run scripts/data/fetch_tokenizer.sh";
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 6;
  j["eval"]["sample_every"] = 2;
  j["eval"]["sample_tokens"] = 7;
  j["eval"]["sample_prompt"] = "A";  // GPT-2 id 32, inside the tiny vocabulary
  j["data"]["tokenizer"] = gfwa::testing::tokenizer_dir();
  const std::string a = root_ + "/a", b = root_ + "/b";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  ASSERT_EQ(train(cfg_of(j), {b, ckpt(a, 3)}), 0);
  const auto sa = records(a, "sample"), sb = records(b, "sample");
  ASSERT_EQ(sa.size(), 3u);
  ASSERT_EQ(sb.size(), 2u);
  EXPECT_EQ(sb[0], sa[1]);
  EXPECT_EQ(sb[1], sa[2]);
  EXPECT_NE(sa[1].at("text"), sa[2].at("text"));
  EXPECT_EQ(sa[0].at("text").get<std::string>().rfind("A", 0), 0u);
  // The default prompt "\n" is id 198, outside the tiny vocabulary: refused up front.
  j["eval"]["sample_prompt"] = "\n";
  try {
    train(cfg_of(j), {root_ + "/c", ""});
    ADD_FAILURE() << "an unencodable prompt was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("eval.sample_prompt"), std::string::npos) << e.what();
  }
}

// A different seed or no shuffling changes the trajectory: the comparison above can fail.
TEST_F(TrainResume, SeedAndShuffleChangeTheRun) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  ASSERT_EQ(train(cfg_of(j), {root_ + "/base", ""}), 0);
  j["train"]["seed"] = 4243;
  ASSERT_EQ(train(cfg_of(j), {root_ + "/seed", ""}), 0);
  j["train"]["seed"] = 4242;
  j["data"]["shuffle"] = false;
  ASSERT_EQ(train(cfg_of(j), {root_ + "/noshuffle", ""}), 0);
  EXPECT_NE(losses_from(root_ + "/base", 1), losses_from(root_ + "/seed", 1));
  EXPECT_NE(losses_from(root_ + "/base", 1), losses_from(root_ + "/noshuffle", 1));
}

// --resume auto takes the newest valid checkpoint, skipping a corrupted one, and the rerun steps
// land on the same state as before; the metrics file keeps one record per step.
TEST_F(TrainResume, AutoResumeSkipsACorruptedCheckpoint) {
  const RunConfig cfg = cfg_of(tiny_config(data_));
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg, {a, ""}), 0);
  const std::string model9 = file_bytes(ckpt(a, 9) + "/model.bin");
  const auto straight = losses_from(a, 1);
  {
    std::fstream f(ckpt(a, 9) + "/model.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(101);
    f.put('\x7f');
  }
  EXPECT_EQ(find_latest_valid(a + "/checkpoints"), ckpt(a, 6));
  ASSERT_EQ(train(cfg, {a, "auto"}), 0);
  EXPECT_EQ(file_bytes(ckpt(a, 9) + "/model.bin"), model9);
  EXPECT_EQ(losses_from(a, 1), straight);
  // Finished runs resume to nothing.
  ASSERT_EQ(train(cfg, {a, "auto"}), 0);
  EXPECT_EQ(losses_from(a, 1), straight);
}

TEST_F(TrainResume, IncompatibleConfigIsRefusedNamingTheKeys) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);

  auto changed = j;
  changed["model"]["d_model"] = 24;
  changed["train"]["seed"] = 7;
  changed["data"]["shuffle"] = false;
  changed["eval"]["every"] = 2;  // allowed
  try {
    train(cfg_of(changed), {root_ + "/b", ckpt(a, 3)});
    ADD_FAILURE() << "an incompatible resume was accepted";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(ckpt(a, 3)), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.d_model (checkpoint 16, now 24)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("train.seed (checkpoint 4242, now 7)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("data.shuffle (checkpoint true, now false)"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("eval.every"), std::string::npos) << msg;
  }

  // The schedule length, eval, logging and checkpoint settings and the recomputation level (which
  // changes no bit of the results) may change.
  auto longer = j;
  longer["train"]["max_steps"] = 5;
  longer["train"]["recompute"] = "full";
  longer["eval"]["every"] = 1;
  longer["logging"]["every"] = 2;
  longer["checkpoint"]["every"] = 0;
  ASSERT_EQ(train(cfg_of(longer), {a, "auto"}), 0);
  EXPECT_TRUE(checkpoint_problem(ckpt(a, 5)).empty());
  EXPECT_EQ(records(a, "eval").back().at("step"), 5);
}

TEST_F(TrainResume, FreshStartRefusesADirectoryWithCheckpoints) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  const auto before = file_bytes(a + "/metrics.jsonl");
  try {
    train(cfg_of(j), {a, ""});
    ADD_FAILURE() << "a fresh run overwrote " << a;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--resume auto"), std::string::npos) << e.what();
  }
  EXPECT_EQ(file_bytes(a + "/metrics.jsonl"), before);
  // Without checkpoints the directory is reused and the old records are dropped.
  fs::remove_all(a + "/checkpoints");
  j["train"]["max_steps"] = 2;
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  EXPECT_EQ(records(a, "train").size(), 2u);
}

TEST_F(TrainResume, FailedCheckpointWriteStopsTheRunAndKeepsTheLastOne) {
  auto j = tiny_config(data_);
  j["train"]["max_steps"] = 3;
  const std::string a = root_ + "/a";
  ASSERT_EQ(train(cfg_of(j), {a, ""}), 0);
  const auto model3 = file_bytes(ckpt(a, 3) + "/model.bin");
  j["train"]["max_steps"] = 6;
  inject_checkpoint_write_fault(1000);
  try {
    train(cfg_of(j), {a, "auto"});
    ADD_FAILURE() << "the failed save went unnoticed";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(a + "/checkpoints/.tmp-step_00000006"), std::string::npos) << e.what();
  }
  inject_checkpoint_write_fault(-1);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(a + "/checkpoints")) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"step_00000003"});
  EXPECT_EQ(find_latest_valid(a + "/checkpoints"), ckpt(a, 3));
  EXPECT_EQ(file_bytes(ckpt(a, 3) + "/model.bin"), model3);
}

TEST(TrainResumeKeys, OnlyShapeDataAndBatchKeysMustMatch) {
  const nlohmann::json saved = {{"model", {{"d_model", 16}, {"attention", {{"window", 5}}}}},
                                {"train", {{"seq_len", 11}, {"max_steps", 9}, {"batch_size", 3}}},
                                {"optimizer", {{"type", "adamw"}, {"lr", 0.1}}}};
  nlohmann::json now = saved;
  EXPECT_TRUE(incompatible_keys(saved, now).empty());
  now["train"]["max_steps"] = 90;
  now["optimizer"]["lr"] = 0.2;
  EXPECT_TRUE(incompatible_keys(saved, now).empty());
  now["model"]["attention"]["window"] = 6;
  now["train"]["batch_size"] = 4;
  now["data"]["val"] = "x";
  now["optimizer"]["type"] = "muon";  // Muon reads AdamW's m as its momentum
  EXPECT_EQ(incompatible_keys(saved, now),
            (std::vector<std::string>{"data.val (checkpoint absent, now \"x\")",
                                      "model.attention.window (checkpoint 5, now 6)",
                                      "optimizer.type (checkpoint \"adamw\", now \"muon\")",
                                      "train.batch_size (checkpoint 3, now 4)"}));
  // A checkpoint from before a key existed resumes when the key holds its default.
  now = saved;
  now["model"]["attention"]["pattern"] = "";
  EXPECT_TRUE(incompatible_keys(saved, now).empty());
  now["model"]["attention"]["pattern"] = "SL";
  EXPECT_EQ(incompatible_keys(saved, now),
            (std::vector<std::string>{"model.attention.pattern (checkpoint absent, now \"SL\")"}));
}

// Checkpoints from before grouped-query attention and Muon hold neither model.n_kv_heads nor
// optimizer.type: they ran multi-head with AdamW, the defaults, and resume as such only.
TEST(TrainResumeKeys, CheckpointsFromBeforeGqaAndMuonResumeWithTheDefaults) {
  nlohmann::json saved = config_to_json(RunConfig{});
  saved["model"].erase("n_kv_heads");
  saved["optimizer"].erase("type");
  nlohmann::json now = config_to_json(RunConfig{});
  ASSERT_EQ(now["model"]["n_kv_heads"], 0);
  ASSERT_EQ(now["optimizer"]["type"], "adamw");
  EXPECT_TRUE(incompatible_keys(saved, now).empty());
  now["model"]["n_kv_heads"] = 2;
  now["optimizer"]["type"] = "muon";
  EXPECT_EQ(incompatible_keys(saved, now),
            (std::vector<std::string>{"model.n_kv_heads (checkpoint absent, now 2)",
                                      "optimizer.type (checkpoint absent, now \"muon\")"}));
}

TEST_F(TrainResume, NonFiniteStepsAreSkippedThenStopTheRun) {
  auto j = tiny_config(data_);
  j["optimizer"]["lr"] = 1e30;  // the first update overflows the activations
  j["train"]["max_bad_steps"] = 2;
  j["checkpoint"]["every"] = 1;
  const std::string a = root_ + "/a";
  try {
    train(cfg_of(j), {a, ""});
    ADD_FAILURE() << "the run did not stop";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("stopping at step 3 after 2 non-finite steps in a row"), std::string::npos) << msg;
    EXPECT_NE(msg.find(ckpt(a, 2)), std::string::npos) << msg;
  }
  const auto steps = records(a, "train");
  ASSERT_EQ(steps.size(), 2u);  // the stopping step throws before it is logged
  EXPECT_TRUE(std::isfinite(steps[0].at("loss").get<double>()));
  EXPECT_TRUE(steps[1].at("loss").is_null());  // NaN is written as null
  // Skipped updates leave the parameters and moments as they were.
  EXPECT_EQ(file_bytes(ckpt(a, 1) + "/model.bin"), file_bytes(ckpt(a, 2) + "/model.bin"));
  EXPECT_EQ(file_bytes(ckpt(a, 1) + "/optimizer.bin"), file_bytes(ckpt(a, 2) + "/optimizer.bin"));
}

}  // namespace
}  // namespace gfwa
