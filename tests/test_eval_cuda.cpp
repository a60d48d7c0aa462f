// Backend::target_logprobs on the GPU against the cpu backend: per-token log-probabilities in the
// training shape and in a forward-only shape with more rows than training allows, and zero-shot
// log-likelihoods through score_requests.
#ifdef GFWA_WITH_CUDA
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "eval/loglikelihood.h"
#include "model/cpu_backend.h"
#include "model/cuda_backend.h"

namespace gfwa {
namespace {

constexpr int kMaxB = 2, kMaxT = 64;

ModelConfig eval_config(AttnMode mode, bool shift) {
  ModelConfig c;
  c.vocab_size = 389;
  c.n_layers = 2;
  c.d_model = 128;
  c.n_heads = 2;
  c.ffn_hidden = 200;
  c.attention.mode = mode;
  c.attention.window = 24;
  c.attention.token_shift = shift;
  return c;
}

std::vector<int32_t> ids(size_t n, int vocab, std::mt19937_64& rng) {
  std::vector<int32_t> t(n);
  for (auto& v : t) v = int32_t(rng() % uint64_t(vocab));
  return t;
}

class EvalCuda : public ::testing::TestWithParam<AttnMode> {};

TEST_P(EvalCuda, TargetLogprobsMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  const ModelConfig cfg = eval_config(GetParam(), GetParam() != AttnMode::full);
  auto cpu = make_cpu_backend(cfg, kMaxB, kMaxT);
  auto gpu = make_cuda_backend(cfg, kMaxB, kMaxT);
  cpu->init_params(21);
  std::vector<float> p;
  cpu->get_params(p);
  gpu->set_params(p);
  std::mt19937_64 rng(4);
  // The training shape, then 8 rows of 16: forward-only room beyond max_B.
  for (const auto& [B, T] : {std::pair<int, int>{kMaxB, kMaxT}, {8, 16}, {3, 37}}) {
    const auto in = ids(size_t(B) * T, cfg.vocab_size, rng), tg = ids(size_t(B) * T, cfg.vocab_size, rng);
    std::vector<float> lc(size_t(B) * T), lg(size_t(B) * T);
    cpu->target_logprobs(in.data(), tg.data(), B, T, lc.data());
    gpu->target_logprobs(in.data(), tg.data(), B, T, lg.data());
    double worst = 0, mean = 0;
    for (size_t n = 0; n < lc.size(); ++n) {
      worst = std::max(worst, std::fabs(double(lg[n]) - lc[n]));
      mean += lc[n] / double(lc.size());
    }
    std::printf("[ info ] %d x %d: mean log p %.4f, max |cuda - cpu| %.4f\n", B, T, mean, worst);
    EXPECT_LT(worst, 0.05) << B << " x " << T;  // bf16 activations and logits
    if (B <= kMaxB) {  // the same forward as forward_loss
      double sum = 0;
      for (float v : lg) sum += v;
      EXPECT_NEAR(-sum / double(lg.size()), gpu->forward_loss(in.data(), tg.data(), B, T), 1e-4);
    }
  }
  std::vector<int32_t> x(size_t(kMaxB) * kMaxT + 16, 1);
  std::vector<float> out(x.size());
  EXPECT_THROW(gpu->target_logprobs(x.data(), x.data(), 9, 16, out.data()), std::invalid_argument);  // 144 > 128
  EXPECT_THROW(gpu->target_logprobs(x.data(), x.data(), 1, kMaxT + 1, out.data()), std::invalid_argument);
}

TEST_P(EvalCuda, ZeroShotLogLikelihoodsMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  const ModelConfig cfg = eval_config(GetParam(), false);
  auto cpu = make_cpu_backend(cfg, kMaxB, kMaxT);
  auto gpu = make_cuda_backend(cfg, kMaxB, kMaxT);
  cpu->init_params(8);
  std::vector<float> p;
  cpu->get_params(p);
  gpu->set_params(p);
  std::mt19937_64 rng(9);
  std::vector<eval::TokenRequest> reqs;
  for (int i = 0; i < 40; ++i)
    reqs.push_back({ids(1 + rng() % 90, cfg.vocab_size, rng), ids(1 + rng() % 12, cfg.vocab_size, rng)});
  const auto lc = eval::score_requests(eval::backend_source(*cpu, kMaxB, kMaxT), reqs);
  const auto lg = eval::score_requests(eval::backend_source(*gpu, kMaxB, kMaxT), reqs);
  for (size_t i = 0; i < reqs.size(); ++i)
    EXPECT_NEAR(lg[i], lc[i], 0.02 * double(reqs[i].continuation.size())) << "request " << i;
}

INSTANTIATE_TEST_SUITE_P(Modes, EvalCuda, ::testing::Values(AttnMode::gatedfwa, AttnMode::swa, AttnMode::full));

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
