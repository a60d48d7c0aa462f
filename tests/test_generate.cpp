// `gfwa generate` below the command line: sampling (temperature, top-k, top-p, seeds), prompt
// files (lines, JSONL, invalid UTF-8 naming the line) and the generation loop on the cpu decoder
// (determinism, batches, stopping at <|endoftext|>).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "infer/generate.h"
#include "infer/prompts.h"
#include "model/cpu_backend.h"
#include "train/sampling.h"
#include "model_test_params.h"

using namespace gfwa;

namespace {

namespace fs = std::filesystem;

std::string temp_file(const std::string& name, const std::string& bytes) {
  const fs::path p = fs::temp_directory_path() / ("gfwa_generate_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

TEST(Sampling, GreedyTakesTheArgmaxAndDrawsNothing) {
  const std::vector<float> logits{0.1f, 2.0f, 2.0f, -1.0f};
  SamplingOptions o;
  o.temperature = 0.0f;
  std::mt19937_64 rng(1), untouched(1);
  EXPECT_EQ(sample_token(logits.data(), 4, o, rng), 1);  // ties: the lower id
  EXPECT_EQ(rng(), untouched());
}

TEST(Sampling, TopKTopPAndTheVocabularyLimitBoundTheDraws) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1.
  const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  auto draws = [&](SamplingOptions o) {
    std::mt19937_64 rng(7);
    std::map<int, int> n;
    for (int i = 0; i < 4000; ++i) ++n[sample_token(logits.data(), 4, o, rng)];
    return n;
  };
  SamplingOptions o;
  auto all = draws(o);
  EXPECT_EQ(all.size(), 4u);
  EXPECT_NEAR(all[0] / 4000.0, 0.5, 0.03);
  o.top_k = 2;
  EXPECT_EQ(draws(o).size(), 2u);
  o.top_k = 0;
  o.top_p = 0.7f;  // 0.5 < 0.7 <= 0.8: ids 0 and 1
  auto nucleus = draws(o);
  EXPECT_EQ(nucleus.size(), 2u);
  EXPECT_NEAR(nucleus[0] / 4000.0, 0.5 / 0.8, 0.03);
  o.top_p = 1.0f;
  o.vocab_limit = 3;
  EXPECT_EQ(draws(o).count(3), 0u);
  o.vocab_limit = 0;
  o.temperature = 0.05f;  // sharp: nearly always the top id
  EXPECT_GT(draws(o)[0], 3990);
}

TEST(Sampling, TopPBeyondTheFirstRankedBlockStillFindsTheNucleus) {
  std::vector<float> logits(1000, 0.0f);  // uniform: the 0.9 nucleus is 900 ids
  SamplingOptions o;
  o.top_p = 0.9f;
  std::mt19937_64 rng(3);
  std::set<int> seen;
  for (int i = 0; i < 20000; ++i) seen.insert(sample_token(logits.data(), 1000, o, rng));
  EXPECT_GT(*seen.rbegin(), 850);
  EXPECT_LT(*seen.rbegin(), 900);
}

TEST(Sampling, ProblemsNameTheOption) {
  SamplingOptions o;
  o.top_p = 0.0f;
  EXPECT_NE(sampling_problem(o).find("--top-p"), std::string::npos);
  o = {};
  o.temperature = -1.0f;
  EXPECT_NE(sampling_problem(o).find("--temperature"), std::string::npos);
  o = {};
  o.top_k = -2;
  EXPECT_NE(sampling_problem(o).find("--top-k"), std::string::npos);
}

TEST(Prompts, LinesJsonlAndInvalidUtf8NamingTheLine) {
  const auto lines = read_prompt_file(temp_file("p.txt", "first\n\nthird \xc3\xa9\n"));
  EXPECT_EQ(lines, (std::vector<std::string>{"first", "", "third \xc3\xa9"}));
  const auto jl = read_prompt_file(temp_file("p.jsonl", "{\"prompt\": \"a\\nb\"}\n\n{\"prompt\": \"\", \"x\": 1}\n"));
  EXPECT_EQ(jl, (std::vector<std::string>{"a\nb", ""}));
  const std::string bad = temp_file("bad.txt", "ok\nbad \xc3\x28 here\n");
  try {
    read_prompt_file(bad);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(bad + ":2: invalid UTF-8 at byte 5"), std::string::npos) << e.what();
  }
  const std::string nofield = temp_file("n.jsonl", "{\"prompt\": \"a\"}\n{\"text\": \"b\"}\n");
  try {
    read_prompt_file(nofield);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(nofield + ":2:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_prompt_utf8("\xed\xa0\x80", "--prompt"), std::runtime_error);  // a surrogate
}

ModelConfig tiny(AttnMode mode) { return gfwa::test::two_layer_model(29, 16, 24, mode, 5, false); }

// Runs generate and returns each sequence's tokens.
std::vector<std::vector<int32_t>> run(Backend& be, int batch, const std::vector<std::vector<int32_t>>& prompts,
                                      const GenerateOptions& o, GenerateStats* st = nullptr) {
  auto dec = be.make_decoder(batch, 64);
  std::vector<std::vector<int32_t>> out(prompts.size());
  std::vector<int> done;
  const GenerateStats s = generate(
      *dec, prompts, o, [&](int i, int32_t id) { out[size_t(i)].push_back(id); },
      [&](int i) { done.push_back(i); });
  EXPECT_EQ(done.size(), prompts.size());
  if (st) *st = s;
  return out;
}

TEST(Generate, SameSeedSameTextWhateverTheBatchAndStopAtEot) {
  CpuBackend be(tiny(AttnMode::gatedfwa), 1, 1);
  be.init_params(3);
  const std::vector<std::vector<int32_t>> prompts{{1, 2, 3}, {4}, {5, 6, 7, 8, 9, 10, 11}};
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.seed = 99;
  o.eot = 28;
  GenerateStats st;
  const auto a = run(be, 3, prompts, o, &st);
  EXPECT_EQ(a, run(be, 3, prompts, o));
  EXPECT_EQ(a, run(be, 2, prompts, o));  // groups of 2, then 1 (with a filler slot)
  for (const auto& s : a) EXPECT_EQ(s.size(), 12u);
  EXPECT_EQ(st.prompt_tokens, 11);
  EXPECT_EQ(st.new_tokens, 36);
  EXPECT_EQ(st.decode_tokens, 33);  // the first token of each comes from the prefill
  o.seed = 100;
  EXPECT_NE(a, run(be, 3, prompts, o));
  // A sequence that draws the end token stops there, without reporting it.
  o.seed = 99;
  o.eot = a[0][4];
  o.stop_at_eot = true;
  const auto stopped = run(be, 3, prompts, o);
  EXPECT_EQ(stopped[0], std::vector<int32_t>(a[0].begin(), a[0].begin() + 4));
}

}  // namespace
