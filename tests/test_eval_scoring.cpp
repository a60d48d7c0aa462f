// Zero-shot scoring: the batched log-likelihoods against one prefix at a time through the cpu
// backend, and every task's accuracies on the files in tests/data/eval under a model whose
// log-likelihoods are worked out by hand below.
#include <cmath>
#include <map>
#include <memory>
#include <random>

#include <gtest/gtest.h>

#include "data/tokenizer.h"
#include "eval/zeroshot.h"
#include "model/cpu_backend.h"
#include "test_data_util.h"

namespace gfwa::eval {
namespace {

ModelConfig small_model(int vocab) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 2;
  c.ffn_hidden = 24;
  c.attention.mode = AttnMode::gatedfwa;
  c.attention.window = 6;
  return c;
}

std::vector<int32_t> random_ids(size_t n, int vocab, std::mt19937_64& rng) {
  std::vector<int32_t> t(n);
  for (auto& v : t) v = int32_t(rng() % uint64_t(vocab));
  return t;
}

// log p(continuation | context) one token at a time through last_logits: the window is the last
// max_T + 1 tokens, as score_requests documents.
double reference_ll(Backend& be, const TokenRequest& r, int max_T) {
  std::vector<int32_t> all = r.context;
  all.insert(all.end(), r.continuation.begin(), r.continuation.end());
  const size_t start = all.size() > size_t(max_T) + 1 ? all.size() - size_t(max_T) - 1 : 0;
  const std::vector<int32_t> w(all.begin() + long(start), all.end());
  const size_t scored = std::min(r.continuation.size(), w.size() - 1);
  double sum = 0;
  std::vector<float> logits;
  for (size_t k = w.size() - scored; k < w.size(); ++k) {
    be.last_logits(w.data(), int(k), logits);
    double m = logits[0], z = 0;
    for (float x : logits) m = std::max(m, double(x));
    for (float x : logits) z += std::exp(double(x) - m);
    sum += double(logits[size_t(w[k])]) - m - std::log(z);
  }
  return sum;
}

TEST(EvalScoring, BatchedLogLikelihoodsMatchOnePrefixAtATime) {
  const ModelConfig cfg = small_model(97);
  const int max_B = 2, max_T = 40;  // rows round up to 16 tokens, so 5 rows a call: B > max_B
  auto be = make_cpu_backend(cfg, max_B, max_T);
  be->init_params(5);
  std::mt19937_64 rng(17);
  std::vector<TokenRequest> reqs;
  for (int i = 0; i < 23; ++i) {
    const size_t ctx = 1 + rng() % (i % 4 == 0 ? 60 : 12), cont = rng() % (i % 7 == 0 ? 45 : 6);
    reqs.push_back({random_ids(ctx, cfg.vocab_size, rng), random_ids(cont, cfg.vocab_size, rng)});
  }
  std::vector<std::pair<int, int>> shapes;
  LogprobSource src = backend_source(*be, max_B, max_T);
  const auto inner = src.logprobs;
  src.logprobs = [&](const int32_t* in, const int32_t* tgt, int B, int T, float* out) {
    shapes.emplace_back(B, T);
    inner(in, tgt, B, T, out);
  };
  const std::vector<double> ll = score_requests(src, reqs);
  ASSERT_EQ(ll.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    const double ref = reference_ll(*be, reqs[i], max_T);
    EXPECT_NEAR(ll[i], ref, 1e-4 * (1 + std::fabs(ref))) << "request " << i;
    if (reqs[i].continuation.empty()) {
      EXPECT_EQ(ll[i], 0.0);
    }
  }
  bool wide = false;
  for (auto [B, T] : shapes) {
    EXPECT_LE(int64_t(B) * T, int64_t(max_B) * max_T);
    EXPECT_TRUE(T == max_T || T % 16 == 0) << T;
    wide |= B > max_B;
  }
  EXPECT_TRUE(wide) << "no call used the forward-only room for more rows";
}

TEST(EvalScoring, TargetLogprobsBoundsTheTokensNotTheRows) {
  const ModelConfig cfg = small_model(31);
  auto be = make_cpu_backend(cfg, 2, 8);
  be->init_params(2);
  std::vector<int32_t> ids(32, 3);
  std::vector<float> out(32);
  be->target_logprobs(ids.data(), ids.data(), 4, 4, out.data(), nullptr);  // 16 tokens in 4 rows: fits
  for (int n = 0; n < 16; ++n) EXPECT_LT(out[size_t(n)], 0.0f);
  EXPECT_THROW(be->target_logprobs(ids.data(), ids.data(), 4, 5, out.data(), nullptr), std::invalid_argument);  // 20 > 16
  EXPECT_THROW(be->target_logprobs(ids.data(), ids.data(), 1, 9, out.data(), nullptr), std::invalid_argument);  // T > max_T
  EXPECT_THROW(be->forward_loss(ids.data(), ids.data(), 4, 4), std::invalid_argument);  // training shapes stay
}

// The hand-checked model: log p(next | previous token) = -1 for every token, except -0.5 for
// " yes", -1.5 for " no", and -0.25 for " was" right after " trophy". A choice's log-likelihood is
// then minus its token count (BoolQ and WinoGrande aside), and acc_norm divides by its bytes.
class HandModel {
 public:
  explicit HandModel(const Tokenizer& tok) {
    cost_[{-1, one(tok, " yes")}] = 0.5;
    cost_[{-1, one(tok, " no")}] = 1.5;
    cost_[{one(tok, " trophy"), one(tok, " was")}] = 0.25;
  }
  LogprobSource source() {
    LogprobSource s;
    s.max_T = 64;
    s.max_tokens = 64 * 3;
    s.logprobs = [this](const int32_t* in, const int32_t* tgt, int B, int T, float* out) {
      for (int n = 0; n < B * T; ++n) {
        auto it = cost_.find({in[n], tgt[n]});
        if (it == cost_.end()) it = cost_.find({-1, tgt[n]});
        out[n] = -float(it == cost_.end() ? 1.0 : it->second);
      }
    };
    return s;
  }
  static int32_t one(const Tokenizer& tok, const char* word) {
    const auto ids = tok.encode(word);
    EXPECT_EQ(ids.size(), 1u) << "'" << word << "' is not one GPT-2 token";
    return ids.at(0);
  }

 private:
  std::map<std::pair<int32_t, int32_t>, double> cost_;
};

class EvalTasksScored : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gfwa::testing::tokenizer_present())
      GTEST_SKIP() << "no " << gfwa::testing::tokenizer_dir() << "; run scripts/data/fetch_tokenizer.sh";
    tok_ = std::make_unique<Tokenizer>(gfwa::testing::tokenizer_dir());
  }
  TaskScore score(const std::string& task, const std::string& rel, int rank = 0, int world = 1) {
    const PreparedTask t =
        prepare_task(task, std::string(GFWA_SOURCE_DIR) + "/tests/data/eval/" + rel, *tok_, tok_->vocab_size());
    HandModel m(*tok_);
    return score_task(t, m.source(), rank, world);
  }
  std::unique_ptr<Tokenizer> tok_;
};

// Token counts the expectations below rest on: one GPT-2 token per word, with its leading space.
TEST_F(EvalTasksScored, ThePhrasesHaveTheTokenCountsTheExpectationsUse) {
  const std::pair<const char*, size_t> phrases[] = {
      {" dog", 1},         {" elephant", 1},         {" the cat", 2},       {" the mat", 2},
      {" a ball", 2},      {" the dog", 2},          {" the mat sat", 3},   {" a red ball", 3},
      {" the cat sat", 3}, {" a big red ball", 4},   {" the big red ball", 4}, {" the dog sat down", 4},
      {" a big red ball more", 5}, {" the cat sat on the mat", 6}, {" was too big.", 4}, {" was weak.", 3},
      {" the dog sat", 3}, {" a cat", 2}, {" it sat on the mat", 5}, {" the dog ran", 3}};
  for (const auto& [text, n] : phrases) EXPECT_EQ(tok_->encode(text).size(), n) << "'" << text << "'";
}

// Per item (ll = -tokens; norm = ll / bytes of the choice without its leading space; ties go to
// the first choice):
//   hellaswag 1: ll -6 -1 -4 -4, norm -.273 -.333 -.286 -.250, gold 3: acc no,  norm yes
//             2: ll -2 -1 -3 -3, norm -.286 -.333 -.273 -.300, gold 1: acc yes, norm no
//             3: ll -1 -2 -5 -1, norm -.125 -.286 -.263 -.333, gold 0: acc yes, norm yes
//             4: ll -1 -6 -4 -2, norm -.333 -.273 -.250 -.286, gold 2: acc no,  norm yes
TEST_F(EvalTasksScored, HellaSwagRawAndNormalisedAccuracyDisagree) {
  const TaskScore s = score("hellaswag", "hellaswag/hellaswag_val.jsonl");
  EXPECT_EQ(s.items, 4);
  EXPECT_EQ(s.correct, 2);
  EXPECT_EQ(s.correct_norm, 3);
  EXPECT_TRUE(s.has_norm);
}

//   piqa 1: -1 (dog) vs -6 (norm -.333 vs -.273), gold 1: no / yes; 2: -1 (elephant, -.125) vs -2, gold 0: yes / yes
//   arc_easy 1: -1 -4 -2, norm -.333 -.25 -.286, gold A: yes / no; 2: -6 -2 -1, norm best "elephant", gold 3: yes / yes
//   arc_challenge: -2 -1 -2 -4 -2, norm -.286 -.333 -.333 -.25 -.286, gold D: no / yes
//   openbookqa 1: -2 -1 -3 -1 (tie: B first), norm B -.125, gold B: yes / yes
//              2: -1 -2 -4 -2, norm -.333 -.286 -.25 -.333, gold " C": no / yes
TEST_F(EvalTasksScored, MultipleChoiceTasksCountByHand) {
  struct Expect {
    const char* task;
    const char* file;
    int items, correct, correct_norm;
  };
  const Expect cases[] = {{"piqa", "piqa/valid.jsonl", 2, 1, 2},
                          {"arc_easy", "arc/ARC-Easy-Dev.jsonl", 2, 2, 1},
                          {"arc_challenge", "arc/ARC-Challenge-Dev.jsonl", 1, 0, 1},
                          {"openbookqa", "openbookqa/dev.jsonl", 2, 1, 2}};
  for (const Expect& e : cases) {
    const TaskScore s = score(e.task, e.file);
    EXPECT_EQ(s.items, e.items) << e.task;
    EXPECT_EQ(s.correct, e.correct) << e.task;
    EXPECT_EQ(s.correct_norm, e.correct_norm) << e.task;
    EXPECT_TRUE(s.has_norm) << e.task;
  }
}

//   winogrande 1: " was" after " trophy" costs .25: -3.25 vs -4, gold 1: yes
//              2: " was weak." after " ball" or " window": -3 vs -3, tie -> option 1, gold 2: no
//   copa 1: " the dog sat" -3 vs " a cat" -2, gold 0: no; 2: -5 vs -3, gold 1: yes
//   boolq: " yes" (-.5) always beats " no" (-1.5): right on the true answers only
TEST_F(EvalTasksScored, PartialYesNoAndCausalTasksCountByHand) {
  const TaskScore w = score("winogrande", "winogrande/dev.jsonl");
  EXPECT_EQ(w.items, 2);
  EXPECT_EQ(w.correct, 1);
  EXPECT_FALSE(w.has_norm);
  const TaskScore c = score("copa", "copa/val.jsonl");
  EXPECT_EQ(c.items, 2);
  EXPECT_EQ(c.correct, 1);
  const TaskScore b = score("boolq", "boolq/val.jsonl");
  EXPECT_EQ(b.items, 3);
  EXPECT_EQ(b.correct, 2);
  EXPECT_EQ(score("boolq", "boolq/dev.jsonl").correct, 1);
}

TEST_F(EvalTasksScored, RanksShareTheItemsAndTheirCountsAddUp) {
  const TaskScore a = score("hellaswag", "hellaswag/hellaswag_val.jsonl", 0, 3);
  const TaskScore b = score("hellaswag", "hellaswag/hellaswag_val.jsonl", 1, 3);
  const TaskScore c = score("hellaswag", "hellaswag/hellaswag_val.jsonl", 2, 3);
  EXPECT_EQ(a.items + b.items + c.items, 4);
  EXPECT_EQ(a.items, 2);
  EXPECT_EQ(a.correct + b.correct + c.correct, 2);
  EXPECT_EQ(a.correct_norm + b.correct_norm + c.correct_norm, 3);
}

TEST_F(EvalTasksScored, ATokenOutsideTheModelVocabularyIsAnError) {
  const std::string f = std::string(GFWA_SOURCE_DIR) + "/tests/data/eval/copa/val.jsonl";
  try {
    prepare_task("copa", f, *tok_, 97);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(f + ":1: copa: token id "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.vocab_size 97"), std::string::npos) << e.what();
  }
}

TEST(EvalReport, JsonAndMarkdownTable) {
  TaskScore h{"hellaswag", 4, 2, 3, true}, w{"winogrande", 2, 1, 0, false};
  const auto j = score_json(h, "hs.jsonl");
  EXPECT_EQ(j.at("acc"), 0.5);
  EXPECT_EQ(j.at("acc_norm"), 0.75);
  EXPECT_NEAR(j.at("acc_stderr").get<double>(), std::sqrt(0.25 / 3), 1e-12);
  EXPECT_EQ(j.at("items"), 4);
  EXPECT_FALSE(score_json(w, "w.jsonl").contains("acc_norm"));
  EXPECT_EQ(markdown_table({h, w}),
            "| task | items | acc | acc_norm |\n|---|---:|---:|---:|\n| hellaswag | 4 | 50.00 | 75.00 |\n"
            "| winogrande | 2 | 50.00 | - |\n");
}

TEST(EvalReport, EncodePairMovesTrailingSpaceAndUsesEndOfTextForNoContext) {
  if (!gfwa::testing::tokenizer_present()) GTEST_SKIP() << "no tokenizer";
  const Tokenizer tok(gfwa::testing::tokenizer_dir());
  EncodeCache cache;
  const TokenRequest a = encode_pair(tok, "Answer: ", "yes", cache);
  EXPECT_EQ(a.context, tok.encode("Answer:"));
  EXPECT_EQ(a.continuation, tok.encode(" yes"));
  const TokenRequest b = encode_pair(tok, "", "Hello", cache);
  EXPECT_EQ(b.context, std::vector<int32_t>{Tokenizer::kEndOfText});
  EXPECT_EQ(b.continuation, tok.encode("Hello"));
}

}  // namespace
}  // namespace gfwa::eval
