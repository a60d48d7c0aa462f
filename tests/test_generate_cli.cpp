// `gfwa generate` as a user runs it, on a tiny checkpoint (cpu backend): text streamed to stdout
// and the report on stderr, same seed same text, a prompt file giving one JSON line per prompt in
// order (an empty prompt included), invalid UTF-8 naming the file and line, and a full-attention
// model refusing positions past its training length. Skips without the tokenizer files.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/cpu_backend.h"
#include "test_data_util.h"
#include "test_gfwa_process.h"
#include "train/checkpoint.h"
#include "train/config_io.h"

namespace gfwa {
namespace {

using namespace testing_process;
namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::tokenizer_present()) GTEST_SKIP() << "no tokenizer files (scripts/data/fetch_tokenizer.sh)";
    root_ = (fs::temp_directory_path() / ("gfwa_generate_cli_" + std::to_string(::getpid()))).string();
    fs::remove_all(root_);
    fs::create_directories(root_);
    out_ = root_ + "/out.txt";
    err_ = root_ + "/err.txt";
  }
  void TearDown() override {
    if (!root_.empty()) fs::remove_all(root_);
  }
  // A randomly initialised 2-layer model trained (nominally) at seq_len 16.
  std::string checkpoint(AttnMode mode) {
    RunConfig cfg;
    cfg.model.n_layers = 2;
    cfg.model.d_model = 16;
    cfg.model.n_heads = 2;
    cfg.model.ffn_hidden = 32;
    cfg.model.attention.mode = mode;
    cfg.model.attention.window = 4;
    cfg.train.seq_len = 16;
    cfg.data.tokenizer = testing::tokenizer_dir();
    auto be = make_cpu_backend(cfg.model, 1, 1);
    be->init_params(7);
    CheckpointData d;
    d.config = config_to_json(cfg);
    d.state = {{"step", 1}};
    be->get_params(d.params);
    d.adam_m.assign(d.params.size(), 0.0f);
    d.adam_v.assign(d.params.size(), 0.0f);
    return save_checkpoint(root_ + "/" + attn_mode_name(mode), 1, d);
  }
  int run(std::vector<std::string> args) { return run_gfwa(args, out_, err_); }
  std::string root_, out_, err_;
};

TEST_F(GenerateCli, StreamsTextReportsAndRepeatsWithTheSeed) {
  const std::string ck = checkpoint(AttnMode::gatedfwa);
  const std::vector<std::string> args{"generate", "--checkpoint", ck, "--prompt", "It is a truth", "--max-new-tokens",
                                      "40", "--seed", "5", "--top-k", "50", "--backend", "cpu"};
  ASSERT_EQ(run(args), 0) << slurp(err_);
  const std::string text = slurp(out_), err = slurp(err_);
  EXPECT_GT(text.size(), 40u);  // 40 tokens of at least one byte, then a newline
  EXPECT_NE(err.find("generate: 1 prompt(s), 4 prompt tokens, 40 new"), std::string::npos) << err;
  EXPECT_NE(err.find("tokens/s"), std::string::npos) << err;
  EXPECT_NE(err.find("gatedfwa, the last 4 tokens"), std::string::npos) << err;
  ASSERT_EQ(run(args), 0);
  EXPECT_EQ(slurp(out_), text);
}

TEST_F(GenerateCli, PromptFileGivesOneJsonLinePerPromptInOrder) {
  const std::string ck = checkpoint(AttnMode::swa), prompts = root_ + "/prompts.txt";
  std::ofstream(prompts) << "Mr. Darcy\n\nElizabeth said\n";
  ASSERT_EQ(run({"generate", "--checkpoint", ck, "--prompt-file", prompts, "--max-new-tokens", "6", "--temperature",
                 "0", "--batch-size", "2", "--backend", "cpu"}),
            0)
      << slurp(err_);
  std::ifstream in(out_);
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(lines[size_t(i)].at("index"), i);
  EXPECT_EQ(lines[1].at("prompt"), "");  // an empty prompt starts from <|endoftext|>
  EXPECT_EQ(lines[2].at("prompt"), "Elizabeth said");
}

TEST_F(GenerateCli, BadInputIsOneLineNamingTheProblem) {
  const std::string ck = checkpoint(AttnMode::full), prompts = root_ + "/bad.txt";
  std::ofstream(prompts, std::ios::binary) << "fine\nnot \xff fine\n";
  EXPECT_EQ(run({"generate", "--checkpoint", ck, "--prompt-file", prompts, "--backend", "cpu"}), 2);
  EXPECT_NE(slurp(err_).find(prompts + ":2: invalid UTF-8 at byte 5"), std::string::npos) << slurp(err_);
  EXPECT_EQ(run({"generate", "--checkpoint", ck, "--prompt", "hello", "--max-new-tokens", "20", "--backend", "cpu"}),
            2);
  EXPECT_NE(slurp(err_).find("train.seq_len"), std::string::npos) << slurp(err_);
  EXPECT_EQ(run({"generate", "--checkpoint", ck, "--prompt", "hello", "--max-new-tokens", "20", "--context-limit",
                 "64", "--backend", "cpu"}),
            0)
      << slurp(err_);
  EXPECT_EQ(run({"generate", "--checkpoint", ck, "--prompt", "x", "--top-p", "0"}), 2);
  EXPECT_NE(slurp(err_).find("--top-p"), std::string::npos) << slurp(err_);
}

}  // namespace
}  // namespace gfwa
