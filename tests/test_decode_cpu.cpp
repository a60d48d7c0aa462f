// The cpu decoder (model/cpu_decoder.h, kernels/decode_cpu.h) against the training forward:
// teacher-forced decoding through the O(W) cache gives the full forward's logits at every
// position, past W and past the longest sequence the model trained on, in all three modes, with
// and without token shift, for prompts prefilled in one or several chunks and sequences of
// different lengths decoded together, and with grouped-query attention. Then 100k tokens: the
// cache does not grow, and the rebased gate state keeps its digits (the last logits match a fresh
// decoder fed only the receptive field).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "model/cpu_backend.h"
#include "model/cpu_model.h"
#include "model_test_params.h"

using namespace gfwa;
using gfwa::test::random_tokens;

namespace {

ModelConfig decode_config(AttnMode mode, bool shift, int window) {
  return gfwa::test::two_layer_model(37, 16, 24, mode, window, shift);
}

// Weights N(0, 0.3^2), norm weights around 1, gate biases around gate_bias: every path matters.
std::vector<float> random_params(const ParamLayout& layout, uint64_t seed, double gate_bias) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  std::vector<float> p(layout.total());
  for (const ParamTensor& t : layout.tensors()) {
    const bool norm = t.name.size() >= 4 && t.name.compare(t.name.size() - 4, 4, "norm") == 0;
    const bool bias = t.name.find("gate_b") != std::string::npos;
    for (size_t i = 0; i < t.numel; ++i)
      p[t.offset + i] = float(norm ? 1.0 + 0.2 * z(rng) : bias ? gate_bias + 0.5 * z(rng) : 0.3 * z(rng));
  }
  return p;
}

// max |a - b| / max |b| over one row of logits.
double row_error(const float* a, const float* b, int n) {
  double num = 0, den = 0;
  for (int i = 0; i < n; ++i) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return num / std::max(den, 1e-30);
}

struct Case {
  AttnMode mode;
  bool shift;
  int kv_heads;              // 0: two heads, multi-head; else four query heads over kv_heads K/V heads
  const char* pattern = "";  // model.attention.pattern letters over the 2 layers
};

ModelConfig case_config(const Case& c, int window) {
  ModelConfig cfg = decode_config(c.mode, c.shift, window);
  cfg.attention.pattern.letters = c.pattern;
  if (c.kv_heads > 0) {
    cfg.n_heads = 4;
    cfg.n_kv_heads = c.kv_heads;
  }
  return cfg;
}

std::string case_name(const Case& c) {
  return std::string(attn_mode_name(c.mode)) + (c.shift ? "_shift" : "") +
         (c.kv_heads > 0 ? "_kv" + std::to_string(c.kv_heads) : "") + (*c.pattern ? std::string("_") + c.pattern : "");
}

class DecodeCpu : public ::testing::TestWithParam<Case> {};

// The model "trained" at T 16 (training length) with W 6, against the full forward in double; sequences of 150 and 97 tokens decoded
// together: slot 0 prefilled with 70 tokens (two chunks of the prefill path), slot 1 with 1.
TEST_P(DecodeCpu, TeacherForcedDecodingMatchesTheFullForwardAtEveryPosition) {
  const Case c = GetParam();
  const ModelConfig cfg = case_config(c, 6);
  const std::vector<int> lengths{150, 97}, prompts{70, 1};
  CpuBackend be(cfg, 1, 16);
  const std::vector<float> params = random_params(be.layout(), 11, 0.5);
  be.set_params(params);
  auto dec = be.make_decoder(2, 200);  // full attention: room for every position stepped
  const int V = cfg.vocab_size;

  std::vector<std::vector<int32_t>> seqs;
  // The full forward's logits [T, V] of each sequence, in double: the fp32 forward has rounding of
  // its own (its absolute Lam loses digits with T) of the size of the tolerance.
  std::vector<std::vector<float>> ref;
  for (int b = 0; b < 2; ++b) {
    seqs.push_back(random_tokens(size_t(lengths[b]), V, 100 + b));
    CpuModel<double> m(cfg, 1, lengths[b]);
    m.params().assign(params.begin(), params.end());
    m.forward_loss(seqs[b].data(), seqs[b].data(), 1, lengths[b]);
    ref.emplace_back(m.logits(), m.logits() + size_t(lengths[b]) * V);
  }
  double worst = 0;
  auto check = [&](int b, int t) {  // the decoder's logits of slot b are those after position t
    const double e = row_error(&dec->logits()[size_t(b) * V], &ref[b][size_t(t) * V], V);
    worst = std::max(worst, e);
    ASSERT_LT(e, 1e-5) << "slot " << b << " position " << t;
  };
  for (int b = 0; b < 2; ++b) {
    dec->prefill(b, seqs[b].data(), prompts[b]);
    check(b, prompts[b] - 1);
  }
  std::vector<int32_t> next(2);
  for (int step = 0;; ++step) {
    bool any = false;
    for (int b = 0; b < 2; ++b) {
      const int t = prompts[b] + step;  // the position this step appends
      any |= t < lengths[b];
      next[b] = t < lengths[b] ? seqs[b][size_t(t)] : 0;
    }
    if (!any) break;
    dec->step(next.data());
    for (int b = 0; b < 2; ++b)
      if (prompts[b] + step < lengths[b]) check(b, prompts[b] + step);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(dec->position(0), 70 + 96);  // slot 0 kept stepping (a filler token) until slot 1 was done
  EXPECT_EQ(dec->position(1), 97);
  std::printf("  %s: worst relative logit error %.2e over %d + %d positions\n", case_name(c).c_str(), worst,
              lengths[0], lengths[1]);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecodeCpu,
                         ::testing::Values(Case{AttnMode::gatedfwa, false, 0}, Case{AttnMode::gatedfwa, true, 0},
                                           Case{AttnMode::swa, false, 0}, Case{AttnMode::swa, true, 0},
                                           Case{AttnMode::full, false, 0}, Case{AttnMode::full, true, 0}),
                         [](const auto& info) { return case_name(info.param); });
// Per-layer patterns (a windowed and a full layer): each layer decodes through its own cache, also
// with grouped-query attention (each cache holds the K/V heads).
INSTANTIATE_TEST_SUITE_P(Patterns, DecodeCpu,
                         ::testing::Values(Case{AttnMode::gatedfwa, true, 0, "SL"}, Case{AttnMode::swa, false, 0, "LS"},
                                           Case{AttnMode::gatedfwa, true, 2, "SL"}, Case{AttnMode::swa, true, 1, "LS"}),
                         [](const auto& info) { return case_name(info.param); });
INSTANTIATE_TEST_SUITE_P(GroupedQuery, DecodeCpu,
                         ::testing::Values(Case{AttnMode::gatedfwa, true, 1}, Case{AttnMode::gatedfwa, false, 2},
                                           Case{AttnMode::swa, true, 2}, Case{AttnMode::full, false, 1}),
                         [](const auto& info) { return case_name(info.param); });

// The ring holds the K/V heads only: keys and values shrink with n_kv_heads; the gates' Lam stays one
// per query head (floats per entry, plus the newest token's double).
TEST(DecodeCpuCache, HoldsKeysAndValuesOfTheKvHeadsAndLamOfTheQueryHeads) {
  for (int kv : {4, 2, 1}) {
    const ModelConfig cfg = case_config({AttnMode::gatedfwa, true, kv}, 6);
    CpuBackend be(cfg, 1, 1);
    const int64_t B = 3, L = cfg.n_layers, W = 6, D = cfg.head_dim(), H = cfg.n_heads;
    const int64_t per_layer = 2 * B * kv * W * D * 4 + B * H * W * 4 + B * H * 8 + 2 * B * kv * D * 4;
    EXPECT_EQ(be.make_decoder(int(B), 0)->cache_bytes(), L * per_layer) << "n_kv_heads " << kv;
  }
}

// 100k tokens through a gatedfwa decoder whose gates close fast (Lam falls ~1.3 per token, to
// ~-1.3e5): the cache holds the same bytes after the first W tokens as at the end, and the last
// logits equal those of a fresh decoder fed only the last 32 tokens (2 layers of window 4 with
// token shift see 9 tokens back; RoPE depends on distances only). With Lam kept absolute in fp32
// (no rebasing) its ulp there (~8e-3) moves these logits by 2e-4; rebased, they stay within 1e-7.
TEST(DecodeCpuLong, CacheIsConstantAndTheGateKeepsItsDigitsAfter100kTokens) {
  const ModelConfig cfg = decode_config(AttnMode::gatedfwa, true, 4);
  CpuBackend be(cfg, 1, 1);
  be.set_params(random_params(be.layout(), 5, -1.0));
  const int n = 100000, V = cfg.vocab_size, tail = 32;
  const std::vector<int32_t> seq = random_tokens(size_t(n), V, 9);
  auto dec = be.make_decoder(1, 0);
  dec->prefill(0, seq.data(), 1);
  int64_t after_w = 0;
  for (int t = 1; t < n; ++t) {
    dec->step(&seq[size_t(t)]);
    if (t == cfg.attention.window) after_w = dec->cache_bytes();
  }
  EXPECT_EQ(dec->cache_bytes(), after_w);
  std::printf("  cache %lld bytes after %d tokens and after %d\n", (long long)after_w, cfg.attention.window + 1, n);
  const std::vector<float> last = dec->logits();
  auto fresh = be.make_decoder(1, 0);
  fresh->prefill(0, seq.data() + n - tail, tail);
  const double e = row_error(last.data(), fresh->logits().data(), V);
  std::printf("  relative logit difference after %d tokens vs a fresh decoder: %.2e\n", n, e);
  EXPECT_LT(e, 1e-5);
}

}  // namespace
