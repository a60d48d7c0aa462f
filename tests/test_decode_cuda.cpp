// The cuda decoder (model/cuda_decoder.h, kernels/decode.cuh) against the fp32 training forward of
// the cpu model: teacher-forced decoding through the bf16 cache gives the same logits at every
// position (bf16 level), past W and past the prefill length, in all three modes, with and without
// token shift; prefills of different lengths decoded together, steps replayed from a CUDA graph.
// The device argmax equals the host one; 20k tokens leave device memory and the cache unchanged.
#ifdef GFWA_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "model/cpu_backend.h"
#include "model/cpu_model.h"
#include "model/cuda_backend.h"
#include "model_test_params.h"

namespace gfwa {
namespace {

using namespace gfwa::test;

ModelConfig decode_config(AttnMode mode, bool shift, int head_dim) {
  ModelConfig c;
  c.vocab_size = 389;
  c.n_layers = 2;
  c.d_model = 2 * head_dim;
  c.n_heads = 2;
  c.ffn_hidden = 200;
  c.attention.mode = mode;
  c.attention.window = 24;
  c.attention.token_shift = shift;
  c.attention.gate_bias_init = 0.5f;
  return c;
}

std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& v : t) v = int32_t(rng() % uint64_t(vocab));
  return t;
}

// ||a - b|| / ||b|| over one row of logits.
double row_rel_l2(const float* a, const float* b, int n) {
  std::vector<double> x(a, a + n), y(b, b + n);
  return rel_l2(x, y);
}

struct Case {
  AttnMode mode;
  bool shift;
  int head_dim;
};

class DecodeCuda : public ::testing::TestWithParam<Case> {};

// Sequences of 300 and 181 tokens, W 24, prefills of 70 (the backend's planned length) and 1.
TEST_P(DecodeCuda, TeacherForcedDecodingMatchesTheCpuForwardAtEveryPosition) {
  GFWA_SKIP_WITHOUT_GPU();
  const Case c = GetParam();
  const ModelConfig cfg = decode_config(c.mode, c.shift, c.head_dim);
  const std::vector<int> lengths{300, 181}, prompts{70, 1};
  const std::vector<float> params = test_params(cfg, 5);
  auto gpu = make_cuda_backend(cfg, 1, 70);
  gpu->set_params(params);
  auto dec = gpu->make_decoder(2, 400);
  const int V = cfg.vocab_size;
  std::vector<std::vector<int32_t>> seqs;
  std::vector<std::vector<float>> ref;
  for (int b = 0; b < 2; ++b) {
    seqs.push_back(random_tokens(size_t(lengths[b]), V, 40 + b));
    CpuModel<float> m(cfg, 1, lengths[b]);
    m.params() = params;
    m.forward_loss(seqs[b].data(), seqs[b].data(), 1, lengths[b]);
    ref.emplace_back(m.logits(), m.logits() + size_t(lengths[b]) * V);
  }
  double worst = 0;
  auto check = [&](int b, int t) {
    const double e = row_rel_l2(&dec->logits()[size_t(b) * V], &ref[b][size_t(t) * V], V);
    worst = std::max(worst, std::isnan(e) ? 1e9 : e);
    ASSERT_LT(e, 3e-2) << "slot " << b << " position " << t;
  };
  for (int b = 0; b < 2; ++b) {
    dec->prefill(b, seqs[b].data(), prompts[b]);
    check(b, prompts[b] - 1);
  }
  std::vector<int32_t> next(2), greedy(2);
  for (int step = 0;; ++step) {
    bool any = false;
    for (int b = 0; b < 2; ++b) {
      const int t = prompts[b] + step;
      any |= t < lengths[b];
      next[b] = t < lengths[b] ? seqs[b][size_t(t)] : 0;
    }
    if (!any) break;
    dec->step(next.data());
    for (int b = 0; b < 2; ++b)
      if (prompts[b] + step < lengths[b]) check(b, prompts[b] + step);
    if (HasFatalFailure()) return;
    dec->greedy(V, greedy.data());
    for (int b = 0; b < 2; ++b) {
      const float* row = &dec->logits()[size_t(b) * V];
      ASSERT_EQ(greedy[b], int32_t(std::max_element(row, row + V) - row)) << "step " << step;
    }
  }
  std::printf("  %s shift %d D %d: worst relative L2 logit error %.2e\n", attn_mode_name(c.mode), int(c.shift),
              c.head_dim, worst);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecodeCuda,
                         ::testing::Values(Case{AttnMode::gatedfwa, false, 64}, Case{AttnMode::gatedfwa, true, 64},
                                           Case{AttnMode::gatedfwa, true, 128}, Case{AttnMode::swa, false, 64},
                                           Case{AttnMode::swa, true, 128}, Case{AttnMode::full, false, 64},
                                           Case{AttnMode::full, true, 128}),
                         [](const auto& info) {
                           return std::string(attn_mode_name(info.param.mode)) + (info.param.shift ? "_shift" : "") +
                                  "_D" + std::to_string(info.param.head_dim);
                         });

// 20k tokens: the device memory in use and the cache's bytes are the same after the first W tokens
// as at the end, and the last logits match a fresh decoder fed the last 64 tokens (2 layers of W
// 24 with token shift see 49 back).
TEST(DecodeCudaLong, MemoryIsConstantAndTheGateKeepsItsDigitsAfter20kTokens) {
  GFWA_SKIP_WITHOUT_GPU();
  ModelConfig cfg = decode_config(AttnMode::gatedfwa, true, 64);
  cfg.attention.gate_bias_init = -1.0f;  // Lam falls ~1.3 per token
  auto gpu = make_cuda_backend(cfg, 1, 64);
  gpu->set_params(test_params(cfg, 9));
  const int n = 20000, tail = 64, V = cfg.vocab_size;
  const std::vector<int32_t> seq = random_tokens(size_t(n), V, 3);
  auto dec = gpu->make_decoder(1, 0);
  dec->prefill(0, seq.data(), 1);
  int64_t mem_after_w = 0, cache_after_w = 0;
  for (int t = 1; t < n; ++t) {
    dec->step(&seq[size_t(t)]);
    if (t == cfg.attention.window) {
      mem_after_w = gpu->memory_in_use();
      cache_after_w = dec->cache_bytes();
    }
  }
  EXPECT_EQ(gpu->memory_in_use(), mem_after_w);
  EXPECT_EQ(dec->cache_bytes(), cache_after_w);
  const std::vector<float> last = dec->logits();
  auto fresh = gpu->make_decoder(1, 0);
  fresh->prefill(0, seq.data() + n - tail, tail);
  const double e = row_rel_l2(last.data(), fresh->logits().data(), V);
  std::printf("  cache %lld bytes; after %d tokens vs a fresh decoder: relative L2 %.2e\n",
              (long long)cache_after_w, n, e);
  EXPECT_LT(e, 3e-2);
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
