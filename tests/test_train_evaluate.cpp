#include <cmath>

#include <gtest/gtest.h>

#include "train/evaluate.h"
#include "train/position_eval.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;

// A model whose next-token logits peak at (last token + 1) mod V, and whose batch losses are
// 1, 2, 3, ... in call order; it records the context lengths it is given.
class FakeBackend : public Backend {
 public:
  explicit FakeBackend(int vocab) { cfg_.vocab_size = vocab; }
  std::string name() const override { return "fake"; }
  const ModelConfig& config() const override { return cfg_; }
  const ParamLayout& layout() const override { throw std::logic_error("unused"); }
  void init_params(uint64_t) override {}
  void queue_forward_backward(const int32_t*, const int32_t*, int, int, float) override {}
  double take_losses() override { return 0; }
  float forward_loss(const int32_t*, const int32_t*, int, int) override { return float(++calls_); }
  void last_logits(const int32_t* tokens, int T, std::vector<float>& logits) override {
    lengths.push_back(T);
    logits.assign(size_t(cfg_.vocab_size), std::nanf(""));  // poison: every entry must be set
    const int peak = (tokens[T - 1] + 1) % cfg_.vocab_size;
    for (int i = 0; i < cfg_.vocab_size; ++i) logits[size_t(i)] = -0.5f * float((i - peak) * (i - peak));
  }
  std::unique_ptr<Decoder> make_decoder(int, int64_t) override { throw std::logic_error("unused"); }
  double peak_flops() const override { return 0; }
  int64_t memory_in_use() const override { return 0; }
  // Per token: the log-probability is minus the position in the window, the arg max follows the
  // logits above.
  void target_logprobs(const int32_t* inputs, const int32_t*, int B, int T, float* out, int32_t* argmax) override {
    for (int i = 0; i < B * T; ++i) {
      out[i] = -float(i % T);
      if (argmax) argmax[i] = (inputs[i] + 1) % cfg_.vocab_size;
    }
  }
  void gate_log_f(std::vector<std::vector<float>>&) override { throw std::logic_error("no gates"); }
  void zero_grad() override {}
  double grad_norm() override { return 0; }
  void adamw_update(const AdamWStep&) override {}
  void muon_update(const MuonStep&, const AdamWStep&) override {}
  void get_params(std::vector<float>&) override {}
  void set_params(const std::vector<float>&) override {}
  void get_grads(std::vector<float>&) override {}
  void get_adam_state(std::vector<float>&, std::vector<float>&) override {}
  void set_adam_state(const std::vector<float>&, const std::vector<float>&) override {}

  std::vector<int> lengths;

 private:
  ModelConfig cfg_;
  int calls_ = 0;
};

TEST(TrainEvaluate, GreedyFollowsTheArgmaxAndTruncatesTheContext) {
  FakeBackend be(50);
  std::mt19937_64 rng(3);
  const auto ids = sample_tokens(be, {7, 8, 9}, 6, 4, 50, 1, rng);
  EXPECT_EQ(ids, (std::vector<int32_t>{10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(be.lengths, (std::vector<int>{3, 4, 4, 4, 4, 4}));
}

TEST(TrainEvaluate, TopKStaysInTheTopKBelowTheLimitAndFollowsTheSeed) {
  FakeBackend be(50);
  std::mt19937_64 r1(7), r2(11), r3(12);
  // After 47 the peak is 48, but ids >= 45 are excluded: the top 3 allowed are 44, 43, 42.
  const auto a = sample_tokens(be, {47}, 1, 8, 45, 3, r1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(a[0] >= 42 && a[0] <= 44) << a[0];
  // Peaks 3..22 are away from the ends, so the top 5 are the peak and its two neighbours each side.
  std::vector<int32_t> x, z;
  for (int32_t last = 2; last < 22; ++last) {
    x.push_back(sample_tokens(be, {last}, 1, 8, 50, 5, r2)[0]);
    z.push_back(sample_tokens(be, {last}, 1, 8, 50, 5, r3)[0]);
    EXPECT_LE(std::abs(x.back() - (last + 1)), 2) << "outside the top 5 around " << last + 1;
  }
  std::mt19937_64 again(11);
  std::vector<int32_t> x2;
  for (int32_t last = 2; last < 22; ++last) x2.push_back(sample_tokens(be, {last}, 1, 8, 50, 5, again)[0]);
  EXPECT_EQ(x, x2);  // same seed, same draws
  EXPECT_NE(x, z);   // another seed, other draws
}

// The validation split of write_shards in file order, 3 windows of 11 per batch.
LoaderOptions val_options(const std::string& dir) {
  LoaderOptions lo;
  lo.pattern = dir + "/val_*.bin";
  lo.B = 3;
  lo.T = 11;
  lo.shuffle = false;
  lo.vocab_size = kVocab;
  return lo;
}

TEST(TrainEvaluate, LossPerplexityAndBitsPerByte) {
  const std::string dir = fresh_dir("evaluate");
  write_shards(dir, 5);  // val: 611 tokens, 1833 UTF-8 bytes, 55 windows of 11
  ValLoader val(val_options(dir));
  FakeBackend be(kVocab);
  const EvalResult r = evaluate(be, val, 3, 11, 4);  // losses 1..4
  EXPECT_EQ(r.batches, 4);
  EXPECT_EQ(r.tokens, 4 * 3 * 11);
  EXPECT_DOUBLE_EQ(r.loss, 2.5);
  EXPECT_DOUBLE_EQ(r.perplexity, std::exp(2.5));
  EXPECT_NEAR(r.bits_per_byte, 2.5 * 611 / (1833 * std::log(2.0)), 1e-12);
  const EvalResult all = evaluate(be, val, 3, 11, 0);  // the whole split: 18 batches, losses 5..22
  EXPECT_EQ(all.batches, 18);
  EXPECT_DOUBLE_EQ(all.loss, 13.5);
  fs::remove_all(dir);
}

TEST(TrainEvaluate, PerPositionLossAccuracyAndAnswers) {
  const std::string dir = fresh_dir("positions");
  write_shards(dir, 5);  // val: 55 windows of 11
  ValLoader val(val_options(dir));
  FakeBackend be(kVocab);
  EXPECT_EQ(evaluated_targets(val, 3, 11, 4), 132);
  EXPECT_EQ(evaluated_targets(val, 3, 11, 0), 18 * 33);
  const std::vector<int64_t> answers = {131, 0, 40, 12};
  const PositionEval r = evaluate_positions(be, val, 3, 11, 4, answers, nullptr);
  EXPECT_EQ(r.totals.batches, 4);
  EXPECT_DOUBLE_EQ(r.totals.loss, 5.0);  // mean of positions 0..10
  std::vector<int32_t> all_in, all_tgt, in, tgt;
  val.reset();
  for (int b = 0; b < 4 && val.next(in, tgt); ++b) {
    all_in.insert(all_in.end(), in.begin(), in.end());
    all_tgt.insert(all_tgt.end(), tgt.begin(), tgt.end());
  }
  auto hit = [&](size_t i) { return (all_in[i] + 1) % kVocab == all_tgt[i]; };
  for (int t = 0; t < 11; ++t) {
    EXPECT_DOUBLE_EQ(r.loss_by_position[size_t(t)], t);
    int hits = 0;
    for (int w = 0; w < 12; ++w) hits += hit(size_t(w) * 11 + t);
    EXPECT_DOUBLE_EQ(r.accuracy_by_position[size_t(t)], hits / 12.0) << t;
  }
  for (size_t k = 0; k < answers.size(); ++k) {
    EXPECT_EQ(r.answer_correct[k], hit(size_t(answers[k]))) << answers[k];
    EXPECT_EQ(r.answer_loss[k], double(answers[k] % 11));
  }
  const nlohmann::json j = position_eval_json(r, 3, 11, true);
  EXPECT_EQ(j["loss_by_position"].size(), 11u);
  EXPECT_EQ(j["answers"]["correct"].size(), 4u);
  EXPECT_THROW(evaluate_positions(be, val, 3, 11, 4, {132}, nullptr), std::invalid_argument);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gfwa
