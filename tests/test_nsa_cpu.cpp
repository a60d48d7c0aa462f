// CPU reference of the NSA core (kernels/nsa_cpu.h): each branch against an independent definition in its
// limits (block 1 compression and selecting every block are full causal attention; gates pick branches),
// the selection's rules (own block, top-k by importance, ties to the lower block), and finite differences
// of every input with the selection held fixed, on small odd shapes: T not a multiple of the block,
// Hkv 1 and 2, groups of 1, 4 and 16.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "grad_check.h"
#include "kernels/attention_cpu.h"
#include "kernels/nsa_cpu.h"
#include "kernels/nsa_gates_cpu.h"

using namespace gfwa;

namespace {

struct Case {
  int B, T, Hkv, G, D, block, top_k, window;
  AttnMode mode;
  uint64_t seed;
};

std::string name(const Case& c) {
  return std::string(attn_mode_name(c.mode)) + "_B" + std::to_string(c.B) + "_T" + std::to_string(c.T) + "_Hkv" +
         std::to_string(c.Hkv) + "_G" + std::to_string(c.G) + "_D" + std::to_string(c.D) + "_blk" +
         std::to_string(c.block) + "_k" + std::to_string(c.top_k) + "_W" + std::to_string(c.window);
}

struct Data {
  NsaShape s;
  AttnMode mode;
  std::vector<double> q, k, v, lam, g_cmp, g_sel, g_win;
  cpu::NsaInputs<double> in() const {
    return {q.data(), k.data(), v.data(), mode == AttnMode::gatedfwa ? lam.data() : nullptr,
            g_cmp.data(), g_sel.data(), g_win.data()};
  }
};

Data make_data(const Case& c) {
  Data x;
  x.s = NsaShape{c.B, c.T, c.Hkv * c.G, c.Hkv, c.D, c.block, c.top_k, c.window};
  x.mode = c.mode;
  const size_t nq = size_t(c.B) * c.T * x.s.H * c.D, nkv = size_t(c.B) * c.T * c.Hkv * c.D,
               nt = size_t(c.B) * c.T * x.s.H;
  x.q = gfwa::testing::randn(nq, c.seed);
  x.k = gfwa::testing::randn(nkv, c.seed + 1);
  x.v = gfwa::testing::randn(nkv, c.seed + 2);
  std::mt19937_64 rng(c.seed + 3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  x.lam.assign(nt, 0.0);  // prefix sums of log-gates in [-0.7, 0]
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < x.s.H; ++h) {
      double run = 0;
      for (int t = 0; t < c.T; ++t) x.lam[(size_t(b) * c.T + t) * x.s.H + h] = run -= 0.7 * u(rng);
    }
  for (auto* g : {&x.g_cmp, &x.g_sel, &x.g_win}) {
    g->resize(nt);
    for (auto& e : *g) e = 0.1 + 0.8 * u(rng);  // sigmoid outputs
  }
  return x;
}

std::vector<double> forward(const Data& x, cpu::NsaSaved<double>* saved) {
  std::vector<double> o(x.q.size(), NAN);
  cpu::nsa_forward(x.s, x.mode, x.in(), o.data(), saved);
  return o;
}

// K/V [B,T,Hkv,D] repeated for each query head of its group: [B,T,H,D].
std::vector<double> expand(const NsaShape& s, const std::vector<double>& x) {
  std::vector<double> out(size_t(s.B) * s.T * s.H * s.D);
  for (int b = 0; b < s.B; ++b)
    for (int t = 0; t < s.T; ++t)
      for (int h = 0; h < s.H; ++h)
        for (int d = 0; d < s.D; ++d)
          out[((size_t(b) * s.T + t) * s.H + h) * s.D + d] =
              x[((size_t(b) * s.T + t) * s.Hkv + h / s.groups()) * s.D + d];
  return out;
}

// Full causal attention with grouped K/V: o and lse ([B,H,T]).
std::vector<double> full_causal(const NsaShape& s, const std::vector<double>& q, const std::vector<double>& k,
                                const std::vector<double>& v, std::vector<double>* lse) {
  const std::vector<double> kx = expand(s, k), vx = expand(s, v);
  std::vector<double> o(q.size());
  lse->assign(size_t(s.B) * s.T * s.H, 0.0);
  cpu::attention_forward(cpu::AttnShape{s.B, s.T, s.H, s.D, s.T, s.H}, AttnMode::full, q.data(), kx.data(), vx.data(),
                         static_cast<const double*>(nullptr), o.data(), lse->data());
  return o;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST(NsaCpu, PoolAveragesCompleteBlocks) {
  const Data x = make_data({2, 23, 2, 1, 3, 4, 2, 3, AttnMode::swa, 1});
  std::vector<double> kc(size_t(2) * 5 * 2 * 3);
  cpu::nsa_pool(x.s, x.k.data(), kc.data());
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 5; ++c)
      for (int hk = 0; hk < 2; ++hk)
        for (int d = 0; d < 3; ++d) {
          double sum = 0;
          for (int j = 0; j < 4; ++j) sum += x.k[((size_t(b) * 23 + 4 * c + j) * 2 + hk) * 3 + d];
          EXPECT_NEAR(kc[((size_t(b) * 5 + c) * 2 + hk) * 3 + d], sum / 4, 1e-14);
        }
}

// Blocks of one token: every key is its own compressed key and is complete once written.
TEST(NsaCpu, CompressionWithBlockOneIsFullCausal) {
  Data x = make_data({2, 17, 2, 3, 4, 1, 2, 5, AttnMode::swa, 2});
  cpu::NsaSaved<double> saved;
  forward(x, &saved);
  std::vector<double> lse_full;
  const std::vector<double> o_full = full_causal(x.s, x.q, x.k, x.v, &lse_full);
  EXPECT_LT(max_abs_diff(saved.o_cmp, o_full), 1e-12);
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 17; ++t)
      for (int h = 0; h < 6; ++h)
        EXPECT_NEAR(saved.lse_cmp[(size_t(b) * 17 + t) * 6 + h], lse_full[(size_t(b) * 6 + h) * 17 + t], 1e-12);
}

// A query sees a compressed key only once its block is complete: before the first complete block the
// branch is 0 (lse 0), and changing a key changes no output before the end of the key's block.
TEST(NsaCpu, CompressionSeesOnlyCompletedBlocks) {
  Data x = make_data({1, 22, 1, 2, 3, 5, 2, 3, AttnMode::swa, 3});
  cpu::NsaSaved<double> base;
  forward(x, &base);
  for (int t = 0; t < 4; ++t)
    for (int h = 0; h < 2; ++h) {
      EXPECT_EQ(base.lse_cmp[t * 2 + h], 0.0);
      for (int d = 0; d < 3; ++d) EXPECT_EQ(base.o_cmp[(t * 2 + h) * 3 + d], 0.0);
    }
  x.k[12 * 3] += 1.0;  // token 12: block [10, 15)
  x.v[13 * 3 + 1] -= 1.0;
  cpu::NsaSaved<double> moved;
  forward(x, &moved);
  for (int t = 0; t < 22; ++t)
    for (int h = 0; h < 2; ++h) {
      const size_t r = size_t(t) * 2 + h;
      const double diff = std::fabs(moved.lse_cmp[r] - base.lse_cmp[r]) + std::fabs(moved.o_cmp[r * 3 + 1] - base.o_cmp[r * 3 + 1]);
      if (t < 14) {
        EXPECT_EQ(diff, 0.0) << "t=" << t;
      } else {
        EXPECT_GT(diff, 1e-6) << "t=" << t;
      }
    }
}

// Every row of idx: ascending, the own block included, min(top_k, own + 1) entries then -1; the chosen
// earlier blocks have the largest importance (ties to the lower block).
TEST(NsaCpu, SelectionKeepsOwnBlockAndTheMostImportant) {
  for (const Case& c : {Case{2, 45, 2, 4, 4, 4, 3, 3, AttnMode::swa, 4}, Case{1, 40, 1, 16, 3, 5, 4, 3, AttnMode::swa, 5},
                        Case{1, 9, 1, 2, 3, 2, 8, 3, AttnMode::swa, 6}}) {
    SCOPED_TRACE(name(c));
    const Data x = make_data(c);
    cpu::NsaSaved<double> saved;
    forward(x, &saved);
    std::vector<double> imp;
    for (int b = 0; b < c.B; ++b)
      for (int t = 0; t < c.T; ++t)
        for (int hk = 0; hk < c.Hkv; ++hk) {
          const int32_t* row = &saved.idx[((size_t(b) * c.T + t) * c.Hkv + hk) * c.top_k];
          const int own = t / c.block, n = std::min(c.top_k, own + 1);
          for (int i = 0; i < c.top_k; ++i) {
            if (i >= n) {
              EXPECT_EQ(row[i], -1);
              continue;
            }
            EXPECT_GE(row[i], 0);
            EXPECT_LE(row[i], own);
            if (i > 0) {
              EXPECT_LT(row[i - 1], row[i]);
            }
          }
          ASSERT_EQ(row[n - 1], own) << "t=" << t;
          cpu::nsa_block_importance(x.s, x.q.data(), saved.k_cmp.data(), saved.lse_cmp.data(), b, t, hk, imp);
          ASSERT_EQ(int(imp.size()), own);
          for (int i = 0; i + 1 < n; ++i)
            for (int cand = 0; cand < own; ++cand) {
              if (std::find(row, row + n, cand) == row + n) {
                EXPECT_TRUE(imp[row[i]] > imp[cand] || (imp[row[i]] == imp[cand] && row[i] < cand))
                    << "t=" << t << " picked " << row[i] << " over " << cand;
              }
            }
        }
  }
}

// q = 0: every compressed key gets the same probability, so every candidate ties and the lowest win.
TEST(NsaCpu, SelectionTiesGoToTheLowerBlock) {
  Data x = make_data({1, 30, 1, 2, 3, 3, 3, 2, AttnMode::swa, 7});
  std::fill(x.q.begin(), x.q.end(), 0.0);
  cpu::NsaSaved<double> saved;
  forward(x, &saved);
  for (int t = 0; t < 30; ++t) {
    const int own = t / 3;
    const int32_t* row = &saved.idx[size_t(t) * 3];
    std::vector<int32_t> expect;
    for (int c = 0; c < std::min(2, own); ++c) expect.push_back(c);
    expect.push_back(own);
    while (expect.size() < 3) expect.push_back(-1);
    EXPECT_EQ(std::vector<int32_t>(row, row + 3), expect) << "t=" << t;
  }
}

// top_k >= the number of blocks: every earlier token is selected, so the branch is full causal attention.
TEST(NsaCpu, SelectingEveryBlockIsFullCausal) {
  Data x = make_data({2, 19, 2, 4, 4, 4, 5, 3, AttnMode::gatedfwa, 8});
  cpu::NsaSaved<double> saved;
  forward(x, &saved);
  std::vector<double> lse_full;
  const std::vector<double> o_full = full_causal(x.s, x.q, x.k, x.v, &lse_full);
  EXPECT_LT(max_abs_diff(saved.o_sel, o_full), 1e-12);
}

// Gates pick the branches: the output is their gated sum, and the sliding branch is attention_cpu's.
TEST(NsaCpu, GatesMixTheBranches) {
  for (AttnMode mode : {AttnMode::swa, AttnMode::gatedfwa}) {
    Data x = make_data({2, 21, 2, 3, 4, 4, 2, 6, mode, 9});
    cpu::NsaSaved<double> saved;
    const std::vector<double> o = forward(x, &saved);
    for (size_t e = 0; e < o.size(); ++e) {
      const size_t r = e / 4;
      EXPECT_NEAR(o[e], x.g_cmp[r] * saved.o_cmp[e] + x.g_sel[r] * saved.o_sel[e] + x.g_win[r] * saved.o_win[e],
                  1e-14);
    }
    const std::vector<double> kx = expand(x.s, x.k), vx = expand(x.s, x.v);
    std::vector<double> o_win(o.size()), lse_win(size_t(2) * 21 * 6);
    cpu::attention_forward(cpu::AttnShape{2, 21, 6, 4, 6, 6}, mode, x.q.data(), kx.data(), vx.data(), x.lam.data(),
                           o_win.data(), lse_win.data());
    EXPECT_LT(max_abs_diff(saved.o_win, o_win), 1e-15);
    EXPECT_LT(max_abs_diff(saved.lse_win, lse_win), 1e-15);
  }
}

TEST(NsaCpu, FloatMatchesDouble) {
  const Case c{1, 27, 2, 4, 8, 4, 3, 5, AttnMode::gatedfwa, 10};
  const Data x = make_data(c);
  cpu::NsaSaved<double> sd;
  const std::vector<double> od = forward(x, &sd);
  auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const std::vector<float> q = f(x.q), k = f(x.k), v = f(x.v), lam = f(x.lam), gc = f(x.g_cmp), gs = f(x.g_sel),
                           gw = f(x.g_win);
  std::vector<float> of(od.size());
  cpu::NsaSaved<float> sf;
  cpu::nsa_forward(x.s, x.mode, cpu::NsaInputs<float>{q.data(), k.data(), v.data(), lam.data(), gc.data(), gs.data(), gw.data()},
                   of.data(), &sf);
  EXPECT_EQ(sf.idx, sd.idx);
  for (size_t e = 0; e < od.size(); ++e) EXPECT_NEAR(of[e], od[e], 1e-5);
}

// The layer's branch gates: column 3h + b of the projection (head h, branch b: compressed, selected,
// sliding) is gate b of head h, sigmoid-ed; the backward is the sigmoid's derivative, laid out back.
TEST(NsaCpu, BranchGatesTakeTheHeadBranchColumns) {
  const int N = 2, H = 3;
  std::vector<double> pre(size_t(N) * 3 * H), g(pre.size()), dg(pre.size()), dpre(pre.size());
  for (size_t i = 0; i < pre.size(); ++i) pre[i] = 0.1 * double(i) - 0.8;
  cpu::nsa_gates_forward(pre.data(), N, H, g.data());
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h)
      for (int b = 0; b < 3; ++b) {
        const double x = pre[size_t(n) * 3 * H + 3 * h + b], s = 1 / (1 + std::exp(-x));
        EXPECT_DOUBLE_EQ(g[size_t(b) * N * H + size_t(n) * H + h], s) << n << " " << h << " " << b;
        dg[size_t(b) * N * H + size_t(n) * H + h] = double(b + 1);
      }
  cpu::nsa_gates_backward(g.data(), dg.data(), N, H, dpre.data());
  const auto f = [&] {  // sum_b (b + 1) * g_b, whose gradient dpre is
    std::vector<double> gg(g.size());
    cpu::nsa_gates_forward(pre.data(), N, H, gg.data());
    return gfwa::testing::dot(gg, dg);
  };
  gfwa::testing::expect_grad(pre.data(), dpre, f, "dpre");
}

TEST(NsaCpu, RejectsBadShapes) {
  Data x = make_data({1, 8, 1, 2, 2, 4, 2, 2, AttnMode::swa, 11});
  std::vector<double> o(x.q.size());
  cpu::NsaSaved<double> saved;
  auto expect_error = [&](NsaShape s, AttnMode mode, const std::string& what) {
    try {
      cpu::nsa_forward(s, mode, x.in(), o.data(), &saved);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  NsaShape s = x.s;
  s.Hkv = 3;
  expect_error(s, AttnMode::swa, "Hkv=3");
  s = x.s;
  s.block = 0;
  expect_error(s, AttnMode::swa, "block=0");
  s = x.s;
  s.top_k = 0;
  expect_error(s, AttnMode::swa, "top_k=0");
  expect_error(x.s, AttnMode::full, "full");
  expect_error(x.s, AttnMode::nsa, "(got nsa)");
  expect_error(x.s, AttnMode::gatedfwa, "lam");  // x.in() passes no lam for swa data
}

// d(sum(o * w))/dx for every input x, by central differences with the selection of the unperturbed
// inputs held fixed (the backward treats it as a constant).
class NsaCpuGrad : public ::testing::TestWithParam<Case> {};

TEST_P(NsaCpuGrad, BackwardMatchesFiniteDifferences) {
  const Case c = GetParam();
  Data x = make_data(c);
  cpu::NsaSaved<double> saved;
  forward(x, &saved);
  const std::vector<double> w = gfwa::testing::randn(x.q.size(), c.seed + 9);
  const size_t nt = x.lam.size();
  std::vector<double> dq(x.q.size(), NAN), dk(x.k.size(), NAN), dv(x.v.size(), NAN), dlam(nt, NAN), dgc(nt, NAN),
      dgs(nt, NAN), dgw(nt, NAN);
  cpu::nsa_backward(x.s, x.mode, x.in(), saved, w.data(),
                    cpu::NsaGrads<double>{dq.data(), dk.data(), dv.data(), dlam.data(), dgc.data(), dgs.data(), dgw.data()});

  cpu::NsaSaved<double> fixed;
  fixed.idx = saved.idx;
  std::vector<double> o(x.q.size());
  auto objective = [&] {
    cpu::nsa_forward_blocks(x.s, x.mode, x.in(), o.data(), &fixed);
    return gfwa::testing::dot(o, w);
  };
  gfwa::testing::expect_grad(x.q.data(), dq, objective, "dq");
  gfwa::testing::expect_grad(x.k.data(), dk, objective, "dk");
  gfwa::testing::expect_grad(x.v.data(), dv, objective, "dv");
  gfwa::testing::expect_grad(x.g_cmp.data(), dgc, objective, "dg_cmp");
  gfwa::testing::expect_grad(x.g_sel.data(), dgs, objective, "dg_sel");
  gfwa::testing::expect_grad(x.g_win.data(), dgw, objective, "dg_win");
  if (c.mode == AttnMode::gatedfwa) gfwa::testing::expect_grad(x.lam.data(), dlam, objective, "dlam");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NsaCpuGrad,
    ::testing::Values(Case{1, 23, 1, 1, 4, 4, 2, 5, AttnMode::gatedfwa, 100},
                      Case{2, 13, 2, 4, 3, 3, 3, 4, AttnMode::swa, 101},
                      Case{1, 19, 2, 4, 4, 4, 2, 7, AttnMode::gatedfwa, 102},
                      Case{1, 11, 1, 16, 4, 3, 2, 3, AttnMode::gatedfwa, 103},
                      Case{1, 10, 2, 16, 2, 4, 1, 2, AttnMode::swa, 104}),
    [](const auto& info) { return name(info.param); });
