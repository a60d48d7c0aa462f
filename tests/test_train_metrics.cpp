#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include <gtest/gtest.h>

#include "model/cpu_backend.h"
#include "model/param_layout.h"
#include "train/metrics.h"

namespace gfwa {
namespace {

ModelConfig model(AttnMode mode, int window) {
  ModelConfig m;
  m.n_layers = 2;
  m.d_model = 16;
  m.attention.mode = mode;
  m.attention.window = window;
  return m;
}

TEST(TrainMetrics, MeanAttendedKeys) {
  EXPECT_DOUBLE_EQ(mean_attended_keys(model(AttnMode::full, 3), 8), 4.5);          // 36 pairs / 8
  EXPECT_DOUBLE_EQ(mean_attended_keys(model(AttnMode::swa, 3), 8), 2.625);         // (24 - 3) / 8
  EXPECT_DOUBLE_EQ(mean_attended_keys(model(AttnMode::gatedfwa, 5), 7), 25.0 / 7); // 35 - 10
  EXPECT_DOUBLE_EQ(mean_attended_keys(model(AttnMode::gatedfwa, 9), 7), 4.0);      // window >= T
}

TEST(TrainMetrics, FlopsPerTokenIsWindowAware) {
  EXPECT_DOUBLE_EQ(flops_per_token(model(AttnMode::full, 3), 1000, 8), 6000 + 12 * 2 * 16 * 4.5);
  EXPECT_DOUBLE_EQ(flops_per_token(model(AttnMode::swa, 3), 1000, 8), 6000 + 12 * 2 * 16 * 2.625);
}

// Each layer counts its own keys: "SL" over 4 layers is two windowed and two full layers, a list
// gives every layer its window, and a pattern of only S counts as the uniform model.
TEST(TrainMetrics, FlopsFollowThePerLayerPattern) {
  ModelConfig m = model(AttnMode::swa, 3);
  m.n_layers = 4;
  m.attention.pattern.letters = "SL";
  EXPECT_DOUBLE_EQ(mean_attended_keys(m, 8), (2.625 + 4.5) / 2);
  EXPECT_DOUBLE_EQ(flops_per_token(m, 1000, 8), 6000 + 12 * 16 * (2 * 2.625 + 2 * 4.5));
  m.attention.pattern.letters = "SSSS";
  ModelConfig uniform = model(AttnMode::swa, 3);
  uniform.n_layers = 4;
  EXPECT_EQ(flops_per_token(m, 1000, 8), flops_per_token(uniform, 1000, 8));
  m.attention.pattern.letters.clear();
  m.attention.pattern.layers = {{AttnMode::gatedfwa, 5}, {AttnMode::full, 0}, {AttnMode::swa, 0}, {AttnMode::swa, 9}};
  // W 5 at T 7: 25/7 keys; full: 4; W 0 takes model.attention.window 3: (21 - 3)/7; W 9 >= T: 4.
  EXPECT_DOUBLE_EQ(mean_attended_keys(m, 7), (25.0 / 7 + 4.0 + 18.0 / 7 + 4.0) / 4);
}

// An nsa layer counts the keys of its three branches (docs/nsa.md): at T 8 with blocks of 2, two selected
// blocks and W 3, the compressed keys (t + 1) / 2 sum to 16, the selected tokens (the own block up to t and
// one earlier block) to 24, the window to 21: 61 / 8 per query. As a pattern entry it counts alone.
TEST(TrainMetrics, NsaLayersCountTheirThreeBranches) {
  ModelConfig m = model(AttnMode::nsa, 3);
  m.attention.nsa.block = 2;
  m.attention.nsa.top_k = 2;
  EXPECT_DOUBLE_EQ(mean_attended_keys(m, 8), 61.0 / 8);
  m.attention.pattern.letters = "SL";
  EXPECT_DOUBLE_EQ(mean_attended_keys(m, 8), (61.0 / 8 + 4.5) / 2);
}

// Grouped-query attention: the parameter count loses the K/V rows of the dropped heads (wk, wv, k_norm,
// the token-shift vectors) and the FLOPs follow it; the attention term (query heads) is unchanged.
TEST(TrainMetrics, ParametersAndFlopsFollowTheKvHeads) {
  ModelConfig mha;  // the 124m-class defaults: 12 layers, d 768, 12 heads of 64
  mha.attention.token_shift = true;
  ModelConfig gqa = mha;
  gqa.n_kv_heads = 4;
  const int64_t n_mha = int64_t(ParamLayout(mha).total()), n_gqa = int64_t(ParamLayout(gqa).total());
  const int64_t dropped = 768 - 4 * 64;  // K/V channels per layer
  EXPECT_EQ(n_mha - n_gqa, 12 * (2 * dropped * 768 + dropped + 2 * (12 - 4) * 768));
  EXPECT_EQ(ParamLayout(gqa).get("layers.0.attn.wk").shape, (std::vector<int>{256, 768}));
  EXPECT_DOUBLE_EQ(flops_per_token(mha, n_mha, 1024) - flops_per_token(gqa, n_gqa, 1024), 6.0 * double(n_mha - n_gqa));
}

TEST(TrainMetrics, CpuBackendHasNoPeakAndReportsItsResidentSet) {
  ModelConfig m = model(AttnMode::full, 3);
  m.vocab_size = 64;
  m.n_heads = 2;
  const auto be = make_cpu_backend(m, 1, 8);
  EXPECT_DOUBLE_EQ(be->peak_flops(), 0.0);  // MFU is not reported on the cpu backend
  EXPECT_GT(be->memory_in_use(), 1 << 20);
}

TEST(TrainMetrics, ResumingDropsRecordsPastTheCheckpoint) {
  const std::string path = std::filesystem::temp_directory_path() / ("gfwa_metrics_" + std::to_string(::getpid()) + ".jsonl");
  std::filesystem::remove(path);
  {
    MetricsWriter w(path, 0);
    for (int s = 1; s <= 6; ++s) w.write({{"step", s}, {"loss", 1.0 / s}});
  }
  {
    std::ofstream(path, std::ios::app) << "{\"step\": 7, \"loss\":";  // cut short by a kill
    MetricsWriter w(path, 4);
    w.write({{"step", 5}, {"loss", 0.5}, {"text", "caf\xc3"}});  // cut inside a UTF-8 character
  }
  std::ifstream in(path);
  std::vector<int> steps;
  for (std::string line; std::getline(in, line);) steps.push_back(nlohmann::json::parse(line).at("step"));
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4, 5}));
  in.clear();
  in.seekg(0);
  std::string last;
  for (std::string line; std::getline(in, line);) last = line;
  EXPECT_EQ(nlohmann::json::parse(last).at("text"), "caf\xef\xbf\xbd");  // U+FFFD
  std::filesystem::remove(path);
}

// Issue 20 (found by scripts/kill_loop.sh): dropping records on resume must replace the file, not
// truncate it in place: a kill -9 between the truncation and the rewrite lost every earlier record.
// The old file, still open here, must keep its content.
TEST(TrainMetrics, ResumeRewritesByReplacingTheFile) {
  const std::string path = std::filesystem::temp_directory_path() / ("gfwa_metrics_swap_" + std::to_string(::getpid()) + ".jsonl");
  std::filesystem::remove(path);
  {
    MetricsWriter w(path, 0);
    for (int s = 1; s <= 6; ++s) w.write({{"step", s}, {"loss", 1.0 / s}});
  }
  std::ifstream old(path);  // the file as it was, by its inode
  { MetricsWriter w(path, 4); }
  int lines = 0;
  for (std::string line; std::getline(old, line);) ++lines;
  EXPECT_EQ(lines, 6) << "the records were rewritten in place";
  std::ifstream now(path);
  lines = 0;
  for (std::string line; std::getline(now, line);) ++lines;
  EXPECT_EQ(lines, 4);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp." + std::to_string(::getpid())));
  std::filesystem::remove(path);
}

TEST(TrainMetrics, UnknownLogLevelIsRejected) {
  EXPECT_THROW(setup_logging("", "chatty"), std::invalid_argument);
}

}  // namespace
}  // namespace gfwa
