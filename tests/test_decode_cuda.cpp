// The decode kernels (kernels/decode.cuh) against their CPU twin (decode_cpu.h) over 120 steps of
// 3 sequences at different positions (ring wraps and gate rebases included); then the cuda decoder
// (model/cuda_decoder.h) against the fp32 training forward of
// the cpu model: teacher-forced decoding through the bf16 cache gives the same logits at every
// position (bf16 level), past W and past the prefill length, in all three modes, with and without
// token shift, multi-head and grouped-query; prefills of different lengths decoded together, steps
// replayed from a CUDA graph.
// The device argmax equals the host one; 20k tokens leave device memory and the cache unchanged.
#ifdef GFWA_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/decode.cuh"
#include "kernels/decode_cpu.h"
#include "model/cpu_backend.h"
#include "model/cpu_model.h"
#include "model/cuda_backend.h"
#include "model_test_params.h"

namespace gfwa {
namespace {

using namespace gfwa::test;

// ||a - b|| / ||b|| over one row of logits.
double row_rel_l2(const float* a, const float* b, int n) {
  std::vector<double> x(a, a + n), y(b, b + n);
  return rel_l2(x, y);
}

struct Case {
  AttnMode mode;
  bool shift;
  int head_dim;
  int kv = 0;                // K/V heads (grouped-query attention); 0: as many as the query heads
  const char* pattern = "";  // model.attention.pattern letters over the 2 layers
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(attn_mode_name(info.param.mode)) + (info.param.shift ? "_shift" : "") + "_D" +
         std::to_string(info.param.head_dim) + (info.param.kv > 0 ? "_kv" + std::to_string(info.param.kv) : "") +
         (*info.param.pattern ? std::string("_") + info.param.pattern : "");
}

class DecodeKernels : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeKernels, AppendAndAttentionMatchTheCpuTwin) {
  GFWA_SKIP_WITHOUT_GPU();
  const Case c = GetParam();
  // Grouped-query cases: 4 query heads over c.kv K/V heads.
  const int B = 3, H = c.kv > 0 ? 4 : 2, Hkv = c.kv > 0 ? c.kv : H, D = c.head_dim, d = H * D, kd = Hkv * D;
  const int ld = d + 2 * kd, cap = 40, steps = 120;
  const bool gated = c.mode == AttnMode::gatedfwa;
  const cuda::DecodeDims dims{B, H, D, c.mode == AttnMode::full ? 200 : cap, c.mode, c.shift, 1e-6f, 10000.0f, Hkv};
  const size_t kv = size_t(B) * Hkv * dims.cap * D, lam_n = size_t(B) * H * dims.cap;
  DeviceBuffer<__nv_bfloat16> k(kv), v(kv), sk(size_t(B) * kd), sv(size_t(B) * kd), qkv(size_t(B) * ld),
      q(size_t(B) * d), o(size_t(B) * d), qw{size_t(d)}, kw{size_t(kd)};
  DeviceBuffer<float> lam(lam_n), pk(size_t(B) * Hkv), pv(size_t(B) * Hkv), hg(size_t(B) * H), pre(size_t(B) * H),
      ws(cuda::decode_attention_workspace_floats(dims));
  DeviceBuffer<double> now(size_t(B) * H);
  DeviceBuffer<int64_t> pos{size_t(B)};
  for (auto* buf : {&k, &v, &sk, &sv}) CUDA_CHECK(cudaMemset(buf->get(), 0, buf->size() * 2));
  CUDA_CHECK(cudaMemset(lam.get(), 0, lam_n * 4));
  CUDA_CHECK(cudaMemset(now.get(), 0, now.size() * 8));
  const std::vector<int64_t> start{0, 13, 37};  // sequence b starts at position start[b]
  pos.upload(start);
  const std::vector<float> qwh = random_bf16_values(size_t(d), 1, 0.2, 1.0);
  const std::vector<float> kwh = random_bf16_values(size_t(kd), 2, 0.2, 1.0);
  qw.upload(to_bf16(qwh));
  kw.upload(to_bf16(kwh));
  std::vector<float> ck(kv, 0.0f), cv(kv, 0.0f), clam(lam_n, 0.0f), csk(size_t(B) * kd, 0.0f), csv(csk.size(), 0.0f);
  std::vector<double> cnow(size_t(B) * H, 0.0);
  const cpu::DecodeShape shape{B, H, D, dims.cap, c.mode, c.shift, 1e-6, 10000.0, Hkv};
  const cpu::DecodeCache<float> cc{ck.data(), cv.data(), clam.data(), csk.data(), csv.data(), cnow.data()};
  double worst = 0;
  for (int s = 0; s < steps; ++s) {
    const std::vector<float> x = random_bf16_values(size_t(B) * ld, 100 + s);
    const std::vector<float> a = random_bf16_values(size_t(B) * Hkv, 300 + s),
                             b2 = random_bf16_values(size_t(B) * Hkv, 900 + s);
    const std::vector<float> g = random_bf16_values(size_t(B) * H, 500 + s, 1.0, -0.5),
                             p = random_bf16_values(size_t(B) * H, 700 + s, 0.3);
    qkv.upload(to_bf16(x));
    pk.upload(a);
    pv.upload(b2);
    hg.upload(g);
    pre.upload(p);
    const cuda::DecodeCacheDev dc{k.get(), v.get(), gated ? lam.get() : nullptr, gated ? now.get() : nullptr,
                                  c.shift ? sk.get() : nullptr, c.shift ? sv.get() : nullptr};
    cuda::decode_append(nullptr, dims, dc, pos.get(), qkv.get(), c.shift ? pk.get() : nullptr,
                        c.shift ? pv.get() : nullptr, gated ? hg.get() : nullptr, gated ? pre.get() : nullptr, qw.get(),
                        kw.get(), q.get());
    cuda::decode_attention(nullptr, dims, dc, pos.get(), q.get(), o.get(), ws.get());
    cuda::decode_advance(nullptr, pos.get(), B);
    std::vector<float> cq(size_t(B) * d), co(size_t(B) * d);
    for (int b = 0; b < B; ++b) {
      const size_t r = size_t(b) * ld, e = size_t(b) * H, ekv = size_t(b) * Hkv;
      const long long at = start[size_t(b)] + s;
      cpu::decode_append(shape, cc, b, at, &x[r], &x[r + d], &x[r + d + kd], &a[ekv], &b2[ekv], &g[e], &p[e],
                         qwh.data(), kwh.data(), &cq[size_t(b) * d]);
      cpu::decode_attention(shape, cc, b, at, &cq[size_t(b) * d], &co[size_t(b) * d]);
    }
    const double eq = rel_err(to_double(q.download()), cq), eo = rel_err(to_double(o.download()), co);
    worst = std::max({worst, eq, eo});
    ASSERT_LT(eq, 1e-2) << "q at step " << s;
    ASSERT_LT(eo, 2e-2) << "o at step " << s;
  }
  std::printf("  %s: worst relative L2 error of q and o over %d steps: %.2e\n", case_name({c, 0}).c_str(), steps,
              worst);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecodeKernels,
                         ::testing::Values(Case{AttnMode::gatedfwa, true, 64}, Case{AttnMode::gatedfwa, false, 128},
                                           Case{AttnMode::swa, true, 128}, Case{AttnMode::full, false, 64}),
                         case_name);
INSTANTIATE_TEST_SUITE_P(GroupedQuery, DecodeKernels,
                         ::testing::Values(Case{AttnMode::gatedfwa, true, 64, 1},
                                           Case{AttnMode::gatedfwa, false, 128, 2}, Case{AttnMode::swa, true, 128, 1},
                                           Case{AttnMode::full, false, 64, 2}),
                         case_name);

class DecodeCuda : public ::testing::TestWithParam<Case> {};

// Sequences of 300 and 181 tokens, W 24, prefills of 70 (the backend's planned length) and 1.
TEST_P(DecodeCuda, TeacherForcedDecodingMatchesTheCpuForwardAtEveryPosition) {
  GFWA_SKIP_WITHOUT_GPU();
  const Case c = GetParam();
  ModelConfig cfg = small_config(c.mode, c.shift, c.head_dim, c.kv);
  cfg.attention.pattern.letters = c.pattern;
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
  std::printf("  %s shift %d D %d kv %d: worst relative L2 logit error %.2e\n", attn_mode_name(c.mode), int(c.shift),
              c.head_dim, cfg.kv_heads(), worst);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecodeCuda,
                         ::testing::Values(Case{AttnMode::gatedfwa, false, 64}, Case{AttnMode::gatedfwa, true, 64},
                                           Case{AttnMode::gatedfwa, true, 128}, Case{AttnMode::swa, false, 64},
                                           Case{AttnMode::swa, true, 128}, Case{AttnMode::full, false, 64},
                                           Case{AttnMode::full, true, 128}),
                         case_name);
// Per-layer patterns: a windowed and a full layer, each with its own cache (O(W) and O(T)); the
// first also multi-query (each layer's cache holds the one K/V head).
INSTANTIATE_TEST_SUITE_P(Patterns, DecodeCuda,
                         ::testing::Values(Case{AttnMode::gatedfwa, true, 64, 0, "SL"},
                                           Case{AttnMode::swa, false, 128, 0, "LS"},
                                           Case{AttnMode::gatedfwa, true, 64, 1, "SL"}),
                         case_name);
// Multi-query (the two query heads share one K/V head): the ring holds one head's keys and values.
INSTANTIATE_TEST_SUITE_P(GroupedQuery, DecodeCuda,
                         ::testing::Values(Case{AttnMode::gatedfwa, true, 64, 1}, Case{AttnMode::swa, false, 128, 1},
                                           Case{AttnMode::full, true, 64, 1}),
                         case_name);

// 20k tokens: the device memory in use and the cache's bytes are the same after the first W tokens
// as at the end, and the last logits match a fresh decoder fed the last 64 tokens (2 layers of W
// 24 with token shift see 49 back).
TEST(DecodeCudaLong, MemoryIsConstantAndTheGateKeepsItsDigitsAfter20kTokens) {
  GFWA_SKIP_WITHOUT_GPU();
  ModelConfig cfg = small_config(AttnMode::gatedfwa, true, 64);
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
