// The cpu decoder end to end: finite-difference gradients (double) of every parameter tensor for
// each attention mode, with and without token shift; the special cases of docs/gatedfwa.md section 2 at
// the model level; fp32 vs fp64; and the CpuBackend (init, state round trips, grad scaling,
// determinism, bad input, learning a synthetic task).
#include <gtest/gtest.h>
#include <omp.h>

#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "grad_check.h"
#include "kernels/adamw_cpu.h"
#include "model/cpu_backend.h"
#include "model/cpu_model.h"

using namespace gfwa;
using namespace gfwa::testing;

namespace {

ModelConfig tiny_config(AttnMode mode, int window, bool shift) {
  ModelConfig c;
  c.vocab_size = 11;
  c.n_layers = 2;
  c.d_model = 8;
  c.n_heads = 2;
  c.ffn_hidden = 12;
  c.attention.mode = mode;
  c.attention.window = window;
  c.attention.token_shift = shift;
  return c;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Parameters far from init so that every path carries gradient: weights N(0, 0.5), norm weights
// around 1, gate biases around 0.5 (gates neither shut nor wide open).
template <class F>
void randomize(CpuModel<F>& m, uint64_t seed) {
  NormalRng rng(seed);
  for (const ParamTensor& t : m.layout().tensors()) {
    const bool norm = ends_with(t.name, "norm"), bias = ends_with(t.name, "gate_b");
    for (size_t i = 0; i < t.numel; ++i) {
      const double z = rng.next();
      m.params()[t.offset + i] = F(norm ? 1.0 + 0.3 * z : bias ? 0.5 + z : 0.5 * z);
    }
  }
}

std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& v : t) v = int32_t(rng() % uint64_t(vocab));
  return t;
}

// Index sample of one tensor: its first and last entries plus a few random ones.
std::vector<size_t> sample(size_t numel, std::mt19937_64& rng, int count) {
  std::vector<size_t> idx = {0, numel - 1};
  for (int i = 0; i < count; ++i) idx.push_back(rng() % numel);
  return idx;
}

void check_model_gradients(const ModelConfig& cfg, uint64_t seed) {
  const int B = 2, T = 7;
  CpuModel<double> m(cfg, B, T);
  randomize(m, seed);
  // Inputs avoid the last id: its embedding row gets gradient only through the tied classifier.
  const auto in = random_tokens(size_t(B) * T, cfg.vocab_size - 1, seed + 1);
  const auto tgt = random_tokens(size_t(B) * T, cfg.vocab_size, seed + 2);
  m.zero_grad();
  m.forward_backward(in.data(), tgt.data(), B, T, 1.0);
  const std::vector<double> grads = m.grads();
  auto loss = [&] { return m.forward_loss(in.data(), tgt.data(), B, T); };
  std::mt19937_64 rng(seed + 3);
  const int C = cfg.d_model;
  for (const ParamTensor& t : m.layout().tensors()) {
    std::vector<size_t> idx = sample(t.numel, rng, 4);
    if (t.name == "embed") {  // rows of input tokens (lookup + classifier) and the classifier-only row
      for (int k = 0; k < 4; ++k) idx.push_back(size_t(in[k]) * C + rng() % C);
      for (int c = 0; c < C; c += 3) idx.push_back(size_t(cfg.vocab_size - 1) * C + c);
    }
    for (size_t i : idx) {
      const double fd = fd_entry(m.params().data(), t.offset + i, loss);
      const double an = grads[t.offset + i];
      EXPECT_TRUE(grad_close(fd, an)) << attn_mode_name(cfg.attention.mode) << " W=" << cfg.attention.window
                                      << " shift=" << cfg.attention.token_shift << " kv_heads=" << cfg.kv_heads()
                                      << " " << t.name << "[" << i << "]: fd " << fd << " analytic " << an;
    }
  }
}

// Copies every tensor of `to` from the tensor of the same name in `from`.
template <class F>
void copy_shared(CpuModel<F>& from, CpuModel<F>& to) {
  for (const ParamTensor& t : to.layout().tensors()) std::copy_n(from.param(t.name), t.numel, to.param(t.name));
}

struct RunResult {
  double loss;
  std::vector<double> grads;
};

RunResult run(CpuModel<double>& m, const std::vector<int32_t>& in, const std::vector<int32_t>& tgt, int B, int T) {
  m.zero_grad();
  const double loss = m.forward_backward(in.data(), tgt.data(), B, T, 1.0);
  return {loss, m.grads()};
}

}  // namespace

TEST(CpuModel, GradientsFull) {
  check_model_gradients(tiny_config(AttnMode::full, 0, false), 100);
  check_model_gradients(tiny_config(AttnMode::full, 0, true), 110);
}

TEST(CpuModel, GradientsSwa) {
  check_model_gradients(tiny_config(AttnMode::swa, 3, false), 200);
  check_model_gradients(tiny_config(AttnMode::swa, 1, false), 210);
  check_model_gradients(tiny_config(AttnMode::swa, 9, false), 220);
  check_model_gradients(tiny_config(AttnMode::swa, 2, true), 230);
}

TEST(CpuModel, GradientsGatedFwa) {
  check_model_gradients(tiny_config(AttnMode::gatedfwa, 3, false), 300);
  check_model_gradients(tiny_config(AttnMode::gatedfwa, 1, false), 310);
  check_model_gradients(tiny_config(AttnMode::gatedfwa, 9, false), 320);
  check_model_gradients(tiny_config(AttnMode::gatedfwa, 4, true), 330);
}

// Grouped-query attention: 4 query heads over 1 (multi-query) or 2 K/V heads, every mode, token shift
// off and on: wk, wv, k_norm and the shift vectors have the K/V heads' shapes, and their gradients sum
// over each group of query heads.
TEST(CpuModel, GradientsGroupedQuery) {
  uint64_t seed = 400;
  for (AttnMode mode : {AttnMode::full, AttnMode::swa, AttnMode::gatedfwa})
    for (int kv : {1, 2})
      for (bool shift : {false, true}) {
        ModelConfig cfg = tiny_config(mode, 3, shift);
        cfg.n_heads = 4;
        cfg.n_kv_heads = kv;
        check_model_gradients(cfg, seed += 10);
      }
}

// NSA layers (docs/nsa.md): blocks of 2 over T = 7 (three complete blocks, a partial one), two selected
// blocks per query group (so tokens of blocks 2 and 3 choose among earlier ones), groups of 2 and 4 query
// heads, both sliding branches, token shift off and on; then NSA in patterns beside other modes. The top-k
// selection is a constant of the backward, and the finite differences do not move it (no near ties here).
TEST(CpuModel, GradientsNsa) {
  uint64_t seed = 500;
  for (AttnMode sliding : {AttnMode::swa, AttnMode::gatedfwa})
    for (int kv : {2, 1}) {
      ModelConfig cfg = tiny_config(AttnMode::nsa, 3, kv == 1);
      cfg.n_heads = 4;
      cfg.n_kv_heads = kv;
      cfg.attention.nsa = NsaConfig{sliding, 2, 2};
      check_model_gradients(cfg, seed += 10);
    }
  ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 3, true);
  cfg.n_layers = 3;
  cfg.n_heads = 4;
  cfg.n_kv_heads = 2;
  cfg.attention.nsa = NsaConfig{AttnMode::gatedfwa, 3, 2};
  cfg.attention.pattern.layers = {{AttnMode::nsa, 2}, {AttnMode::full, 0}, {AttnMode::swa, 2}};
  check_model_gradients(cfg, 560);
  cfg = tiny_config(AttnMode::nsa, 4, false);
  cfg.attention.nsa = NsaConfig{AttnMode::swa, 2, 3};
  cfg.attention.pattern.letters = "SL";
  check_model_gradients(cfg, 570);
}

// An nsa layer's parameters: its gate projection [3H, d] (AdamW with weight decay, not Muon's, as
// GatedFWA's gate weights; N(0, init_std), so the gates start near sigmoid(0) = 1/2), and GatedFWA's
// gate tensors when the sliding branch is gatedfwa, whose log f the gate statistics then read.
TEST(CpuBackend, NsaLayersHaveBranchGatesAndTheirSlidingBranchsGates) {
  for (AttnMode sliding : {AttnMode::swa, AttnMode::gatedfwa}) {
    SCOPED_TRACE(attn_mode_name(sliding));
    ModelConfig cfg = tiny_config(AttnMode::nsa, 3, false);
    cfg.d_model = 64;
    cfg.n_heads = 4;
    cfg.n_kv_heads = 1;
    cfg.attention.nsa.sliding = sliding;
    cfg.attention.pattern.letters = "SL";
    CpuBackend be(cfg, 2, 70);  // the default blocks of 64: one complete block and a partial one
    const ParamTensor& g = be.layout().get("layers.0.attn.nsa_gate");
    EXPECT_EQ(g.shape, (std::vector<int>{12, 64}));
    EXPECT_FALSE(g.hidden);
    EXPECT_TRUE(g.decay);
    EXPECT_THROW(be.layout().get("layers.1.attn.nsa_gate"), std::out_of_range);
    const bool gated = sliding == AttnMode::gatedfwa;
    EXPECT_EQ(cfg.layer_gated(0), gated);
    if (gated)
      EXPECT_NO_THROW(be.layout().get("layers.0.attn.gate_w"));
    else
      EXPECT_THROW(be.layout().get("layers.0.attn.gate_w"), std::out_of_range);
    be.init_params(3);
    std::vector<float> p;
    be.get_params(p);
    double ss = 0;
    for (size_t i = g.offset; i < g.offset + g.numel; ++i) ss += double(p[i]) * p[i];
    EXPECT_NEAR(std::sqrt(ss / double(g.numel)), cfg.init_std, 0.1 * cfg.init_std);
    for (int T : {1, 63, 70}) {
      const auto in = random_tokens(size_t(2) * T, 11, 710 + T);
      EXPECT_TRUE(std::isfinite(be.forward_loss(in.data(), in.data(), 2, T))) << "T " << T;
    }
    std::vector<std::vector<float>> logf;
    if (!gated) {
      EXPECT_THROW(be.gate_log_f(logf), std::logic_error);
      continue;
    }
    be.gate_log_f(logf);
    ASSERT_EQ(logf.size(), 2u);
    EXPECT_EQ(logf[0].size(), 2u * 70 * 4);
    EXPECT_TRUE(logf[1].empty());
  }
}

// logf == 0 -> SWA; and SWA with W >= T is full attention. Gates are shut off through the model's
// own parameters: gate_w = gate_sharp = 0 and gate_b = 60 give logf = logsigmoid(60) ~ -9e-27, far
// below half an ulp of the O(1) logits, so the two models compute the same numbers. T = 13 is prime.
TEST(CpuModel, ClosedGatesEqualSwaAndLargeWindowsEqualFull) {
  const int B = 2, T = 13;
  const auto in = random_tokens(size_t(B) * T, 11, 401), tgt = random_tokens(size_t(B) * T, 11, 402);
  for (bool shift : {false, true})
    for (int W : {1, 2, 7, T - 1, T, T + 5}) {
      SCOPED_TRACE("W=" + std::to_string(W) + " shift=" + std::to_string(shift));
      CpuModel<double> gated(tiny_config(AttnMode::gatedfwa, W, shift), B, T);
      CpuModel<double> swa(tiny_config(AttnMode::swa, W, shift), B, T);
      CpuModel<double> full(tiny_config(AttnMode::full, W, shift), B, T);
      randomize(gated, 410 + W);
      for (int l = 0; l < 2; ++l) {
        const std::string p = "layers." + std::to_string(l) + ".attn.";
        std::fill_n(gated.param(p + "gate_w"), 2 * 8, 0.0);
        std::fill_n(gated.param(p + "gate_sharp"), 2 * 8, 0.0);
        std::fill_n(gated.param(p + "gate_b"), 2, 60.0);
      }
      copy_shared(gated, swa);
      copy_shared(gated, full);
      const RunResult g = run(gated, in, tgt, B, T), s = run(swa, in, tgt, B, T), f = run(full, in, tgt, B, T);
      EXPECT_NEAR(g.loss, s.loss, 1e-13);
      for (const ParamTensor& t : swa.layout().tensors()) {
        const size_t go = gated.layout().get(t.name).offset;
        for (size_t i = 0; i < t.numel; ++i)
          ASSERT_NEAR(g.grads[go + i], s.grads[t.offset + i], 1e-12) << t.name << "[" << i << "]";
      }
      if (W >= T) {  // the same mask: bit-identical
        EXPECT_EQ(s.loss, f.loss);
        EXPECT_EQ(s.grads, f.grads);
      } else {       // the window really cuts: losses differ
        EXPECT_GT(std::fabs(s.loss - f.loss), 1e-6);
      }
    }
}

// Per-layer patterns (model.attention.pattern): every layer with its own mode and window.
TEST(CpuModel, GradientsPattern) {
  ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 3, true);
  cfg.n_layers = 3;
  cfg.attention.pattern.layers = {{AttnMode::gatedfwa, 0}, {AttnMode::full, 0}, {AttnMode::swa, 2}};
  check_model_gradients(cfg, 600);
  cfg.attention.token_shift = false;
  cfg.attention.pattern = AttentionPattern{"SSL", {}};
  check_model_gradients(cfg, 610);
}

// Per-layer patterns with grouped-query attention: 4 query heads over 2 K/V heads (and multi-query)
// in a gated windowed, a full and a plain windowed layer; every layer's K/V tensors have the K/V
// heads' shapes and its dK/dV sum over the groups whatever its mode.
TEST(CpuModel, GradientsPatternGroupedQuery) {
  uint64_t seed = 620;
  for (int kv : {2, 1})
    for (bool shift : {true, false}) {
      ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 3, shift);
      cfg.n_layers = 3;
      cfg.n_heads = 4;
      cfg.n_kv_heads = kv;
      cfg.attention.pattern.layers = {{AttnMode::gatedfwa, 0}, {AttnMode::full, 0}, {AttnMode::swa, 2}};
      check_model_gradients(cfg, seed += 10);
    }
}

// With every K/V head shared by two query heads, a pattern model is the multi-head pattern model
// whose query-head pairs carry copies of the same K/V weights (wk, wv rows, k_norm entries, shift
// vectors): the same loss and, each K/V weight's gradient the sum over its two copies, the same
// gradients (up to rounding: k_norm's mean square runs over twice the entries).
TEST(CpuModel, PatternGroupedQueryEqualsMultiHeadWithCopiedKv) {
  const int B = 2, T = 9;
  const auto in = random_tokens(size_t(B) * T, 11, 631), tgt = random_tokens(size_t(B) * T, 11, 632);
  ModelConfig mha = tiny_config(AttnMode::gatedfwa, 3, true);
  mha.n_heads = 4;
  mha.attention.pattern.letters = "SL";
  ModelConfig gqa = mha;
  gqa.n_kv_heads = 2;
  CpuModel<double> mg(gqa, B, T), mm(mha, B, T);
  randomize(mg, 633);
  // A K/V tensor is 4 blocks (one per query head) in mm, 2 in mg: query head h takes K/V head h / 2.
  auto kv_block = [&](const ParamTensor& u, const ParamTensor& g) { return u.numel == g.numel ? 0 : u.numel / 4; };
  for (const ParamTensor& u : mm.layout().tensors()) {
    const ParamTensor& g = mg.layout().get(u.name);
    const size_t block = kv_block(u, g);
    if (block == 0)
      std::copy_n(mg.param(u.name), u.numel, mm.param(u.name));
    else
      for (size_t h = 0; h < 4; ++h) std::copy_n(mg.param(u.name) + h / 2 * block, block, mm.param(u.name) + h * block);
  }
  const RunResult rg = run(mg, in, tgt, B, T), rm = run(mm, in, tgt, B, T);
  EXPECT_NEAR(rg.loss, rm.loss, 1e-12);
  int kv_tensors = 0;
  for (const ParamTensor& g : mg.layout().tensors()) {
    const ParamTensor& u = mm.layout().get(g.name);
    const size_t block = kv_block(u, g);
    kv_tensors += block > 0;
    for (size_t i = 0; i < g.numel; ++i) {
      const size_t k = block ? i / block : 0, j = block ? i % block : i;  // K/V head k: query heads 2k, 2k + 1
      const double want = block ? rm.grads[u.offset + 2 * k * block + j] + rm.grads[u.offset + (2 * k + 1) * block + j]
                                : rm.grads[u.offset + i];
      EXPECT_NEAR(rg.grads[g.offset + i], want, 1e-10 * (1.0 + std::fabs(want))) << g.name << "[" << i << "]";
    }
  }
  EXPECT_EQ(kv_tensors, 2 * 5);  // per layer wk, wv, k_norm, shift_k, shift_v
}

// A pattern of S only is the uniform model bit for bit (layout, loss, every gradient), as letters
// or as a list; L layers are full attention: "LL" is the uniform full model, and so is "SL" with
// W >= T, while with W < T it is neither the uniform windowed nor the full model.
TEST(CpuModel, PatternsOfOneKindAreTheUniformModels) {
  const int B = 2, T = 13;
  const auto in = random_tokens(size_t(B) * T, 11, 701), tgt = random_tokens(size_t(B) * T, 11, 702);
  auto same = [&](const ModelConfig& a, const ModelConfig& b) {
    CpuModel<double> ma(a, B, T), mb(b, B, T);
    ASSERT_EQ(ma.layout().total(), mb.layout().total());
    randomize(ma, 703);
    randomize(mb, 703);
    const RunResult ra = run(ma, in, tgt, B, T), rb = run(mb, in, tgt, B, T);
    EXPECT_EQ(ra.loss, rb.loss);
    EXPECT_EQ(ra.grads, rb.grads);
  };
  for (AttnMode mode : {AttnMode::full, AttnMode::swa, AttnMode::gatedfwa})
    for (bool shift : {false, true}) {
      SCOPED_TRACE(std::string(attn_mode_name(mode)) + " shift=" + std::to_string(shift));
      const ModelConfig uniform = tiny_config(mode, 4, shift);
      for (const AttentionPattern& p : {AttentionPattern{"S", {}}, AttentionPattern{"SS", {}},
                                        AttentionPattern{"", {{mode, 0}, {mode, 4}}}}) {
        ModelConfig patterned = uniform;
        patterned.attention.pattern = p;
        same(uniform, patterned);
      }
      ModelConfig long_layers = uniform;
      long_layers.attention.pattern.letters = "LL";
      same(tiny_config(AttnMode::full, 4, shift), long_layers);
    }
  ModelConfig wide = tiny_config(AttnMode::swa, T + 5, true);
  wide.attention.pattern.letters = "SL";
  same(tiny_config(AttnMode::full, 4, true), wide);

  ModelConfig mixed = tiny_config(AttnMode::swa, 3, true);
  mixed.attention.pattern.letters = "SL";
  CpuModel<double> m(mixed, B, T), swa(tiny_config(AttnMode::swa, 3, true), B, T),
      full(tiny_config(AttnMode::full, 3, true), B, T);
  for (auto* x : {&m, &swa, &full}) randomize(*x, 704);
  const double loss = run(m, in, tgt, B, T).loss;
  EXPECT_GT(std::fabs(loss - run(swa, in, tgt, B, T).loss), 1e-6);
  EXPECT_GT(std::fabs(loss - run(full, in, tgt, B, T).loss), 1e-6);
}

// Gates exist only in gatedfwa layers: their tensors, and their log f (empty elsewhere).
TEST(CpuBackend, GatesOnlyInGatedLayers) {
  ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 3, false);
  cfg.attention.pattern.letters = "SL";
  CpuBackend be(cfg, 2, 5);
  EXPECT_NO_THROW(be.layout().get("layers.0.attn.gate_w"));
  EXPECT_THROW(be.layout().get("layers.1.attn.gate_w"), std::out_of_range);
  EXPECT_EQ(be.layout().total() + 2 * 8 + 2 + 2 * 8, ParamLayout(tiny_config(AttnMode::gatedfwa, 3, false)).total());
  be.init_params(3);
  const auto in = random_tokens(10, 11, 705);
  be.forward_loss(in.data(), in.data(), 2, 5);
  std::vector<std::vector<float>> logf;
  be.gate_log_f(logf);
  ASSERT_EQ(logf.size(), 2u);
  EXPECT_EQ(logf[0].size(), 2u * 5 * 2);
  EXPECT_TRUE(logf[1].empty());
  cfg.attention.pattern.letters = "LL";
  CpuBackend none(cfg, 2, 5);
  EXPECT_THROW(none.gate_log_f(logf), std::logic_error);
}

// W == 1: o_i = v_i, so queries, keys and gates cannot matter: their gradients are exactly zero.
TEST(CpuModel, WindowOneIgnoresQueriesKeysAndGates) {
  const int B = 2, T = 13;
  CpuModel<double> m(tiny_config(AttnMode::gatedfwa, 1, true), B, T);
  randomize(m, 501);
  const auto in = random_tokens(size_t(B) * T, 11, 502), tgt = random_tokens(size_t(B) * T, 11, 503);
  const RunResult r = run(m, in, tgt, B, T);
  for (const ParamTensor& t : m.layout().tensors()) {
    const bool qk_or_gate = ends_with(t.name, "wq") || ends_with(t.name, "wk") || ends_with(t.name, "q_norm") ||
                            ends_with(t.name, "k_norm") || ends_with(t.name, "shift_k") ||
                            t.name.find("gate_") != std::string::npos;
    double norm = 0;
    for (size_t i = 0; i < t.numel; ++i) norm += std::fabs(r.grads[t.offset + i]);
    if (qk_or_gate)
      EXPECT_EQ(norm, 0.0) << t.name;
    else
      EXPECT_GT(norm, 0.0) << t.name;
  }
  std::fill_n(m.param("layers.1.attn.wq"), 64, 3.0);
  EXPECT_EQ(m.forward_loss(in.data(), tgt.data(), B, T), r.loss);
}

// fp32 model against the fp64 model on identical (fp32-representable) parameters.
TEST(CpuModel, FloatMatchesDouble) {
  const ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 4, true);
  const int B = 3, T = 11;
  CpuModel<double> md(cfg, B, T);
  CpuModel<float> mf(cfg, B, T);
  randomize(md, 601);
  for (size_t i = 0; i < md.params().size(); ++i) {
    mf.params()[i] = float(md.params()[i]);
    md.params()[i] = double(mf.params()[i]);
  }
  const auto in = random_tokens(size_t(B) * T, 11, 602), tgt = random_tokens(size_t(B) * T, 11, 603);
  md.zero_grad();
  mf.zero_grad();
  const double ld = md.forward_backward(in.data(), tgt.data(), B, T, 1.0);
  const double lf = mf.forward_backward(in.data(), tgt.data(), B, T, 1.0);
  EXPECT_NEAR(lf, ld, 1e-5 * ld);
  for (const ParamTensor& t : md.layout().tensors()) {
    double err = 0, ref = 0;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      err += std::pow(double(mf.grads()[i]) - md.grads()[i], 2);
      ref += md.grads()[i] * md.grads()[i];
    }
    EXPECT_LE(std::sqrt(err), 1e-4 * std::sqrt(ref) + 1e-7) << t.name;  // fp32 rounding through ~40 ops
  }
}

TEST(CpuBackend, InitFollowsTheDocumentedRules) {
  ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 4, true);
  cfg.vocab_size = 3001;
  cfg.d_model = 32;
  cfg.n_layers = 3;
  cfg.init_std = 0.05f;
  cfg.attention.gate_bias_init = 2.0f;
  auto be = make_cpu_backend(cfg, 1, 4);
  be->init_params(7);
  std::vector<float> p, p2, p3;
  be->get_params(p);
  be->init_params(7);
  be->get_params(p2);
  EXPECT_EQ(p, p2);
  be->init_params(8);
  be->get_params(p3);
  EXPECT_NE(p, p3);
  auto stats = [&](const std::string& name) {
    const ParamTensor& t = be->layout().get(name);
    double s = 0, ss = 0;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      s += p[i];
      ss += double(p[i]) * p[i];
    }
    return std::make_pair(s / t.numel, std::sqrt(ss / t.numel));
  };
  const auto e = stats("embed");  // 96k draws: the sample std is within ~0.5% of 0.05
  EXPECT_NEAR(e.first, 0.0, 1e-3);
  EXPECT_NEAR(e.second, 0.05, 1e-3);
  EXPECT_NEAR(stats("layers.1.mlp.w1").second, 0.05, 3e-3);
  EXPECT_NEAR(stats("layers.2.attn.wo").second, 0.05 / std::sqrt(6.0), 2e-3);
  EXPECT_NEAR(stats("layers.0.mlp.w2").second, 0.05 / std::sqrt(6.0), 2e-3);
  EXPECT_NEAR(stats("layers.0.attn.gate_w").second, 0.05, 1e-2);
  for (const ParamTensor& t : be->layout().tensors()) {
    float expect = NAN;
    if (ends_with(t.name, "norm")) expect = 1.0f;
    if (ends_with(t.name, "gate_b")) expect = 2.0f;
    if (ends_with(t.name, "gate_sharp") || ends_with(t.name, "shift_k") || ends_with(t.name, "shift_v")) expect = 0;
    if (std::isnan(expect)) continue;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) ASSERT_EQ(p[i], expect) << t.name;
  }
}

// init_parameters draws its normals in chunks on many threads: the values must be NormalRng's single stream,
// tensor by tensor in layout order (param_init.h). 2.2M draws cross the 2M-draw chunk inside the embedding.
TEST(CpuBackend, InitIsOneNormalStreamInLayoutOrder) {
  ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 4, true);
  cfg.vocab_size = 70001;
  cfg.d_model = 32;
  cfg.init_std = 0.02f;
  auto be = make_cpu_backend(cfg, 1, 4);
  be->init_params(5);
  std::vector<float> p;
  be->get_params(p);
  NormalRng rng(5);
  size_t draws = 0;
  for (const ParamTensor& t : be->layout().tensors()) {
    double sd = cfg.init_std;  // the rules of param_init.h
    if (ends_with(t.name, "attn.wo") || ends_with(t.name, "mlp.w2")) sd /= std::sqrt(2.0 * cfg.n_layers);
    if (ends_with(t.name, "norm") || ends_with(t.name, "gate_b") || ends_with(t.name, "gate_sharp") ||
        ends_with(t.name, "shift_k") || ends_with(t.name, "shift_v"))
      continue;  // constants take no draws
    for (size_t i = 0; i < t.numel; ++i) ASSERT_EQ(p[t.offset + i], float(sd * rng.next())) << t.name << " " << i;
    draws += t.numel;
  }
  EXPECT_GT(draws, size_t(2) << 20);
}

TEST(CpuBackend, StateRoundTripsAndBadInput) {
  const ModelConfig cfg = tiny_config(AttnMode::swa, 3, false);
  auto be = make_cpu_backend(cfg, 2, 5);
  EXPECT_EQ(be->name(), "cpu");
  be->init_params(1);
  std::vector<float> p, q(be->layout().total());
  for (size_t i = 0; i < q.size(); ++i) q[i] = float(i % 17) * 0.01f;
  be->set_params(q);
  be->get_params(p);
  EXPECT_EQ(p, q);
  std::vector<float> m(q.size(), 0.5f), v(q.size(), 0.25f), m2, v2;
  be->set_adam_state(m, v);
  be->get_adam_state(m2, v2);
  EXPECT_EQ(m, m2);
  EXPECT_EQ(v, v2);
  EXPECT_THROW(be->set_params(std::vector<float>(3)), std::invalid_argument);
  EXPECT_THROW(be->set_adam_state(m, std::vector<float>(3)), std::invalid_argument);
  const std::vector<int32_t> ok(10, 1), bad = {1, 2, 11, 0, 0, 1, 2, 3, 4, 5};
  EXPECT_THROW(be->forward_loss(bad.data(), ok.data(), 2, 5), std::invalid_argument);
  EXPECT_THROW(be->forward_loss(ok.data(), bad.data(), 2, 5), std::invalid_argument);
  EXPECT_THROW(be->forward_loss(ok.data(), ok.data(), 3, 5), std::invalid_argument);  // B > max_B
  EXPECT_THROW(be->forward_loss(ok.data(), ok.data(), 1, 6), std::invalid_argument);  // T > max_T
  EXPECT_THROW(make_cpu_backend(cfg, 0, 5), std::invalid_argument);
}

TEST(CpuBackend, GradScaleAccumulationAndLastLogits) {
  const ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 3, true);
  const int B = 2, T = 6;
  auto be = make_cpu_backend(cfg, B, T);
  be->init_params(3);
  const auto in = random_tokens(size_t(B) * T, 11, 701), tgt = random_tokens(size_t(B) * T, 11, 702);
  be->zero_grad();
  const float l1 = be->forward_backward(in.data(), tgt.data(), B, T, 1.0f);
  std::vector<float> g1, g2, g3;
  be->get_grads(g1);
  be->zero_grad();
  EXPECT_EQ(be->grad_norm(), 0.0);
  EXPECT_EQ(be->forward_backward(in.data(), tgt.data(), B, T, 0.25f), l1);
  be->get_grads(g2);
  be->forward_backward(in.data(), tgt.data(), B, T, 0.75f);
  be->get_grads(g3);
  double n1 = 0;
  for (size_t i = 0; i < g1.size(); ++i) {
    EXPECT_NEAR(g2[i], 0.25f * g1[i], 1e-6f * std::fabs(g1[i]) + 1e-9f);
    EXPECT_NEAR(g3[i], g1[i], 1e-5f * std::fabs(g1[i]) + 1e-9f);
    n1 += double(g3[i]) * g3[i];
  }
  EXPECT_NEAR(be->grad_norm(), std::sqrt(n1), 1e-12 * std::sqrt(n1));
  EXPECT_NEAR(be->forward_loss(in.data(), tgt.data(), B, T), l1, 1e-7);

  // last_logits: the last row of the full logits of that one sequence
  CpuModel<float> ref(cfg, 1, T);
  be->get_params(ref.params());
  ref.forward_loss(in.data() + T, tgt.data(), 1, T);
  std::vector<float> last;
  be->last_logits(in.data() + T, T, last);
  ASSERT_EQ(last.size(), size_t(cfg.vocab_size));
  for (int i = 0; i < cfg.vocab_size; ++i) EXPECT_NEAR(last[i], ref.logits()[(T - 1) * cfg.vocab_size + i], 1e-6);
}

// Every reduction has a fixed order: two runs, and one thread vs two, give identical bits.
TEST(CpuBackend, DeterministicAcrossRunsAndThreadCounts) {
  ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 5, true);
  cfg.vocab_size = 509;
  cfg.d_model = 64;
  cfg.ffn_hidden = 192;
  const int B = 4, T = 67;  // every matmul goes parallel (the other kernels: CpuLayers.*ThreadCount*)
  auto be = make_cpu_backend(cfg, B, T);
  be->init_params(11);
  const auto in = random_tokens(size_t(B) * T, 509, 801), tgt = random_tokens(size_t(B) * T, 509, 802);
  auto grads_with = [&](int threads, float* loss) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    be->zero_grad();
    *loss = be->forward_backward(in.data(), tgt.data(), B, T, 1.0f);
    omp_set_num_threads(saved);
    std::vector<float> g;
    be->get_grads(g);
    return g;
  };
  float la, lb, lc;
  const auto a = grads_with(2, &la), b = grads_with(2, &lb), c = grads_with(1, &lc);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(la, lc);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}

// A fixed periodic sequence 1 2 1 3 1 2 1 3 ...: after a 1 the next token depends on the token
// before it, so the model must attend to the previous position. Rows start at random phases.
TEST(CpuBackend, LearnsAPeriodicSequence) {
  ModelConfig cfg = tiny_config(AttnMode::gatedfwa, 6, true);
  cfg.vocab_size = 8;
  cfg.d_model = 32;
  cfg.ffn_hidden = 64;
  const int B = 8, T = 16;
  auto be = make_cpu_backend(cfg, B, T);
  be->init_params(5);
  const int pattern[4] = {1, 2, 1, 3};
  std::mt19937_64 rng(901);
  std::vector<int32_t> in(size_t(B) * T), tgt(in.size());
  float first = 0, loss = 0;
  int step = 0;
  for (; step < 200; ++step) {
    for (int b = 0; b < B; ++b) {
      const int phase = int(rng() % 4);
      for (int t = 0; t < T; ++t) {
        in[b * T + t] = pattern[(phase + t) % 4];
        tgt[b * T + t] = pattern[(phase + t + 1) % 4];
      }
    }
    be->zero_grad();
    loss = be->forward_backward(in.data(), tgt.data(), B, T, 1.0f);
    if (step == 0) first = loss;
    if (loss < 0.05f) break;
    const double scale = clip_scale(be->grad_norm(), 1.0);
    be->adamw_update({1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, float(scale), step + 1});
  }
  EXPECT_GT(first, 1.5f);  // ~ln 8 at init
  EXPECT_LT(loss, 0.05f) << "after " << step << " steps";
  std::printf("periodic task: loss %.3f -> %.4f in %d steps\n", first, loss, step);
}

// Manual timing of the quickstart model (run with --gtest_also_run_disabled_tests).
TEST(CpuBackend, DISABLED_QuickstartTiming) {
  ModelConfig cfg;
  cfg.vocab_size = 50304;
  cfg.n_layers = 4;
  cfg.d_model = 128;
  cfg.n_heads = 2;
  cfg.attention.window = 64;
  const int B = 8, T = 128;
  auto be = make_cpu_backend(cfg, B, T);
  be->init_params(1);
  const auto in = random_tokens(size_t(B) * T, cfg.vocab_size, 1);
  const auto tgt = random_tokens(size_t(B) * T, cfg.vocab_size, 2);
  for (int it = 0; it < 4; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    be->zero_grad();
    const float loss = be->forward_backward(in.data(), tgt.data(), B, T, 1.0f);
    const std::clock_t c1 = std::clock();
    const auto t1 = std::chrono::steady_clock::now();
    be->adamw_update({1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, it + 1});
    const auto t2 = std::chrono::steady_clock::now();
    std::printf("loss %.4f  forward_backward %.1f ms (cpu time %.1f ms)  adamw %.1f ms  (%d threads)\n", loss,
                std::chrono::duration<double, std::milli>(t1 - t0).count(), 1e3 * double(c1 - c0) / CLOCKS_PER_SEC,
                std::chrono::duration<double, std::milli>(t2 - t1).count(), omp_get_max_threads());
  }
}

TEST(CpuModel, RejectsShapesItCannotRun) {
  ModelConfig cfg = tiny_config(AttnMode::swa, 3, false);
  cfg.n_heads = 3;  // 8 features do not split into 3 heads
  EXPECT_THROW(CpuModel<float>(cfg, 1, 4), std::invalid_argument);
  cfg = tiny_config(AttnMode::swa, 3, false);
  cfg.n_heads = 8;  // head_dim 1: RoPE needs pairs
  EXPECT_THROW(CpuModel<float>(cfg, 1, 4), std::invalid_argument);
  EXPECT_THROW(CpuModel<float>(tiny_config(AttnMode::gatedfwa, 0, false), 1, 4), std::invalid_argument);
  EXPECT_NO_THROW(CpuModel<float>(tiny_config(AttnMode::full, 0, false), 1, 4));
  for (const NsaConfig& bad : {NsaConfig{AttnMode::full, 64, 16}, NsaConfig{AttnMode::swa, 0, 16},
                               NsaConfig{AttnMode::gatedfwa, 64, 0}}) {
    cfg = tiny_config(AttnMode::nsa, 3, false);
    cfg.attention.nsa = bad;
    EXPECT_THROW(CpuModel<float>(cfg, 1, 4), std::invalid_argument);
  }
}
