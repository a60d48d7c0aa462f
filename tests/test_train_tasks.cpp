// eval.tasks during training: every evaluation scores the zero-shot tasks of the current model and
// logs a "tasks" record to metrics.jsonl.
#include <gtest/gtest.h>

#include "data/tokenizer.h"
#include "eval/zeroshot.h"
#include "model/cpu_backend.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "test_data_util.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;

class TrainTasks : public TrainFixture {
 protected:
  TrainTasks() : TrainFixture(23) {}
};

TEST_F(TrainTasks, EveryEvalScoresTheTasksOfTheCurrentModel) {
  if (!gfwa::testing::tokenizer_present()) GTEST_SKIP() << "no tokenizer; run scripts/data/fetch_tokenizer.sh";
  const std::string eval_data = std::string(GFWA_SOURCE_DIR) + "/tests/data/eval/";
  auto j = tiny_config(data_);
  j["model"]["vocab_size"] = 50304;  // GPT-2 ids; the shards use the first 97
  j["train"]["max_steps"] = 4;
  j["eval"]["every"] = 2;
  j["eval"]["tasks"] = {{"hellaswag", eval_data + "hellaswag/hellaswag_val.jsonl"},
                        {"copa", eval_data + "copa/val.jsonl"}};
  j["data"]["tokenizer"] = gfwa::testing::tokenizer_dir();
  const RunConfig cfg = cfg_of(j);
  const std::string out = root_ + "/out";
  ASSERT_EQ(train(cfg, {out, ""}), 0);

  const auto recs = records(out, "tasks");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].at("step"), 2);
  EXPECT_EQ(recs[1].at("step"), 4);
  for (const char* key : {"hellaswag_acc", "hellaswag_acc_norm", "copa_acc"}) EXPECT_TRUE(recs[1].contains(key)) << key;
  EXPECT_FALSE(recs[1].contains("copa_acc_norm"));  // lm-evaluation-harness reports acc only for COPA

  // The last record is the final model's score, as a fresh scorer gives it from the checkpoint.
  const auto found = find_latest_valid(out + "/checkpoints");
  ASSERT_TRUE(found);
  const CheckpointData ck = load_checkpoint(*found);
  auto be = make_cpu_backend(cfg.model, cfg.train.batch_size, cfg.train.seq_len);
  be->set_params(ck.params);
  const Tokenizer tok(cfg.data.tokenizer);
  const auto src = eval::backend_source(*be, cfg.train.batch_size, cfg.train.seq_len);
  for (const auto& [name, file] : cfg.eval.tasks) {
    const eval::TaskScore s = eval::score_task(eval::prepare_task(name, file, tok, cfg.model.vocab_size), src);
    EXPECT_DOUBLE_EQ(recs[1].at(name + "_acc").get<double>(), s.acc()) << name;
    if (s.has_norm) {
      EXPECT_DOUBLE_EQ(recs[1].at(name + "_acc_norm").get<double>(), s.acc_norm()) << name;
    }
  }
}

}  // namespace
}  // namespace gfwa
