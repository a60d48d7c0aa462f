// What `gfwa eval --per-position / --answers / --gate-stats` is built on: per-row cross-entropy
// and arg max (CPU twins), the cpu backend's per-token log-probabilities, arg maxes and gate log f, the gate
// statistics (alpha distribution, effective memory length) and the answers file reader.
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/argmax_cpu.h"
#include "kernels/cross_entropy_cpu.h"
#include "model/cpu_backend.h"
#include "train/gate_stats.h"
#include "train/position_eval.h"
#include "test_train_util.h"

namespace gfwa {
namespace {

using namespace testing_train;

TEST(EvalPositions, ArgmaxTakesTheLowestIdAmongTies) {
  const std::vector<float> x = {1, 3, 3, 0,  //
                                -1, -1, -1, -1,  //
                                0, 0, 2, 5};
  std::vector<int32_t> out(3);
  cpu::argmax_rows(x.data(), 3, 4, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{1, 0, 3}));
}

TEST(EvalPositions, CrossEntropyRowsAverageToTheLoss) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n01;
  const int N = 7, V = 13;
  std::vector<double> logits(size_t(N) * V), rows(N);
  for (auto& v : logits) v = 2 * n01(rng);
  std::vector<int32_t> targets(N);
  for (auto& t : targets) t = int32_t(rng() % V);
  cpu::cross_entropy_rows(logits.data(), targets.data(), N, V, rows.data());
  double lse = 0;
  for (int j = 0; j < V; ++j) lse += std::exp(logits[size_t(j)]);
  EXPECT_NEAR(rows[0], std::log(lse) - logits[size_t(targets[0])], 1e-12);
  EXPECT_NEAR(std::accumulate(rows.begin(), rows.end(), 0.0) / N,
              cpu::cross_entropy_forward(logits.data(), targets.data(), N, V), 1e-12);
}

ModelConfig small_model(AttnMode mode) {
  ModelConfig c;
  c.vocab_size = 61;
  c.n_layers = 2;
  c.d_model = 16;
  c.n_heads = 2;
  c.attention.mode = mode;
  c.attention.window = 4;
  return c;
}

TEST(EvalPositions, CpuLogprobsAndArgmaxMatchTheLossAndTheLogits) {
  const ModelConfig cfg = small_model(AttnMode::gatedfwa);
  const int B = 2, T = 9;
  auto be = make_cpu_backend(cfg, B, T);
  be->init_params(3);
  std::mt19937_64 rng(4);
  std::vector<int32_t> in(size_t(B) * T), tg(in.size());
  for (auto& t : in) t = int32_t(rng() % 61);
  for (auto& t : tg) t = int32_t(rng() % 61);
  std::vector<float> loss(in.size());
  std::vector<int32_t> argmax(in.size());
  be->target_logprobs(in.data(), tg.data(), B, T, loss.data(), argmax.data());
  EXPECT_NEAR(-std::accumulate(loss.begin(), loss.end(), 0.0) / double(loss.size()),
              be->forward_loss(in.data(), tg.data(), B, T), 1e-5);
  // Position t of sequence 1 sees tokens 0..t only: its arg max is that of the prefix's last logits.
  std::vector<float> logits;
  for (int t : {0, 4, 8}) {
    be->last_logits(in.data() + T, t + 1, logits);
    int32_t best = 0;
    cpu::argmax_rows(logits.data(), 1, cfg.vocab_size, &best);
    EXPECT_EQ(argmax[size_t(T + t)], best) << "position " << t;
  }
}

TEST(EvalPositions, CpuGateLogFFollowsTheGateParameters) {
  const ModelConfig cfg = small_model(AttnMode::gatedfwa);
  const int B = 2, T = 5;
  auto be = make_cpu_backend(cfg, B, T);
  be->init_params(3);
  std::vector<float> p;
  be->get_params(p);
  // Gate weights 0 and sharpness 0 (beta = 1): log f = logsigmoid(bias) / (1 + 1e-3) everywhere.
  for (const auto& t : be->layout().tensors()) {
    const bool w = t.name.find("gate_w") != std::string::npos || t.name.find("gate_sharp") != std::string::npos;
    const bool b = t.name.find("gate_b") != std::string::npos;
    for (size_t i = 0; i < t.numel && (w || b); ++i) p[t.offset + i] = b ? 0.5f * float(i + 1) : 0.0f;
  }
  be->set_params(p);
  std::vector<int32_t> in(size_t(B) * T, 7);
  std::vector<float> loss(in.size());
  std::vector<int32_t> argmax(in.size());
  be->target_logprobs(in.data(), in.data(), B, T, loss.data(), argmax.data());
  std::vector<std::vector<float>> logf;
  be->gate_log_f(logf);
  ASSERT_EQ(logf.size(), 2u);
  for (const auto& layer : logf) {
    ASSERT_EQ(layer.size(), size_t(B) * T * 2);
    for (size_t i = 0; i < layer.size(); ++i) {
      const double bias = 0.5 * double(i % 2 + 1);
      EXPECT_NEAR(layer[i], -std::log1p(std::exp(-bias)) / 1.001, 1e-6) << i;
    }
  }
  auto swa = make_cpu_backend(small_model(AttnMode::swa), 1, 4);
  EXPECT_THROW(swa->gate_log_f(logf), std::logic_error);
}

// Constant alpha = a: the bias reaches -c after ceil(c / a) tokens, for queries that far in.
TEST(EvalPositions, GateStatsMemoryLengthAndAlphaQuantiles) {
  const int T = 40, H = 2;
  GateStats stats(1, H, T);
  std::vector<std::vector<float>> logf(1, std::vector<float>(size_t(T) * H));
  for (int t = 0; t < T; ++t) {
    logf[0][size_t(t) * H + 0] = -0.3f;   // head 0: -1 after 4 tokens, -5 after 17
    logf[0][size_t(t) * H + 1] = -1e-4f;  // head 1: never within 40 tokens
  }
  stats.add(logf, 1);
  const nlohmann::json j = stats.to_json();
  const auto& h0 = j["heads_stats"][0];
  const auto& h1 = j["heads_stats"][1];
  EXPECT_NEAR(h0["alpha_mean"].get<double>(), 0.3, 1e-6);
  EXPECT_NEAR(h0["alpha_p50"].get<double>() / 0.3, 1.0, 0.025);
  EXPECT_NEAR(h1["alpha_p10"].get<double>() / 1e-4, 1.0, 0.025);
  // Queries 1..39: to -1, the 36 queries from position 4 on reach it at n = 4.
  EXPECT_EQ(h0["memory"][0]["median"], 4);
  EXPECT_NEAR(h0["memory"][0]["reached"].get<double>(), 36.0 / 39, 1e-12);
  EXPECT_EQ(h0["memory"][1]["median"], 17);  // 23 of 39 reach -5
  EXPECT_TRUE(h0["memory"][1]["p90"].is_null());
  EXPECT_TRUE(h1["memory"][0]["median"].is_null());
  EXPECT_EQ(h1["memory"][0]["reached"].get<double>(), 0.0);
  int64_t total = 0;
  for (const auto& c : h0["alpha_histogram"]) total += c.get<int64_t>();
  EXPECT_EQ(total, T);
  EXPECT_EQ(j["alpha_log10_edges"].size(), h0["alpha_histogram"].size() + 1);
  EXPECT_THROW(stats.add(logf, 2), std::invalid_argument);  // [1, T, H] is not [2, T, H]
}

// A model with per-layer patterns: layers without gates come empty and have no entries.
TEST(EvalPositions, GateStatsSkipLayersWithoutGates) {
  const int T = 8, H = 2;
  GateStats stats(3, H, T);
  std::vector<std::vector<float>> logf(3);
  logf[1].assign(size_t(T) * H, -0.5f);
  stats.add(logf, 1);
  const nlohmann::json j = stats.to_json();
  ASSERT_EQ(j["heads_stats"].size(), size_t(H));
  for (const auto& h : j["heads_stats"]) {
    EXPECT_EQ(h["layer"], 1);
    EXPECT_NEAR(h["alpha_mean"].get<double>(), 0.5, 1e-6);
  }
  EXPECT_EQ(j["layers"], 3);
}

// A memory length that needs alphas of varying size: the two-pointer scan against brute force.
TEST(EvalPositions, GateStatsMemoryMatchesBruteForce) {
  const int T = 64;
  std::mt19937_64 rng(9);
  std::vector<std::vector<float>> logf(1, std::vector<float>(T));
  for (auto& v : logf[0]) v = -float(std::exponential_distribution<double>(3.0)(rng));
  GateStats stats(1, 1, T);
  stats.add(logf, 1);
  std::vector<int> n(static_cast<size_t>(T), T);  // T: not reached
  for (int i = 1; i < T; ++i) {
    double s = 0;
    for (int k = 1; k <= i; ++k) {
      s -= logf[0][size_t(i - k + 1)];
      if (s >= 1.0) {
        n[size_t(i)] = k;
        break;
      }
    }
  }
  std::vector<int> sorted(n.begin() + 1, n.end());
  std::sort(sorted.begin(), sorted.end());
  const auto median = stats.to_json()["heads_stats"][0]["memory"][0]["median"];
  ASSERT_FALSE(median.is_null());
  EXPECT_EQ(median.get<int>(), sorted[size_t(std::ceil(0.5 * (T - 1))) - 1]);
}

TEST(EvalPositions, TargetIndexFileErrorsNameTheLine) {
  const std::string dir = fresh_dir("answers");
  const std::string path = dir + "/answers.txt";
  std::ofstream(path) << "3\n0\n17\n";
  EXPECT_EQ(read_target_indexes(path, 18), (std::vector<int64_t>{3, 0, 17}));
  try {
    read_target_indexes(path, 17);
    FAIL() << "no error for an index beyond the evaluated targets";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":3: target index 17 is beyond the 17 evaluated targets"),
              std::string::npos) << e.what();
  }
  std::ofstream(path) << "1\n2x\n";
  try {
    read_target_indexes(path, 100);
    FAIL() << "no error for a malformed line";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":2: expected a target index >= 0 (got \"2x\")"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(read_target_indexes(dir + "/none.txt", 5), std::runtime_error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gfwa
