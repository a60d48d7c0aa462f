// CPU reference attention and gate: special cases of docs/gatedfwa.md section 2 and finite-difference
// gradients in double, with as many K/V heads as query heads and with grouped-query attention.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention_cpu.h"
#include "kernels/gate_cpu.h"

using namespace gfwa;

namespace {

std::vector<double> randn(size_t n, std::mt19937_64& rng, double stddev = 1.0) {
  std::normal_distribution<double> nd(0.0, stddev);
  std::vector<double> x(n);
  for (auto& v : x) v = nd(rng);
  return x;
}

struct Inputs {
  cpu::AttnShape s;
  std::vector<double> q, k, v, lam;
};

// Hkv K/V heads (0: H).
Inputs make_inputs(int B, int T, int H, int D, int W, uint64_t seed, double gate_strength, int Hkv = 0) {
  std::mt19937_64 rng(seed);
  Inputs in{{B, T, H, D, W, Hkv > 0 ? Hkv : H}, {}, {}, {}, {}};
  const size_t n = size_t(B) * T * H * D, nkv = size_t(B) * T * in.s.Hkv * D;
  in.q = randn(n, rng);
  in.k = randn(nkv, rng);
  in.v = randn(nkv, rng);
  // lam: prefix sums of non-positive log-gates
  std::uniform_real_distribution<double> u(0.0, gate_strength);
  in.lam.assign(size_t(B) * T * H, 0.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      double run = 0;
      for (int t = 0; t < T; ++t) {
        run -= u(rng);
        in.lam[(size_t(b) * T + t) * H + h] = run;
      }
    }
  return in;
}

std::vector<double> forward(const Inputs& in, AttnMode mode, std::vector<double>* lse_out = nullptr) {
  std::vector<double> o(in.q.size(), NAN), lse(size_t(in.s.B) * in.s.H * in.s.T, NAN);
  cpu::attention_forward(in.s, mode, in.q.data(), in.k.data(), in.v.data(), in.lam.data(), o.data(), lse.data());
  if (lse_out) *lse_out = lse;
  return o;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST(AttentionCpu, ZeroGateEqualsSwaAndLargeWindowEqualsFull) {
  for (int W : {1, 2, 7, 36, 37, 42}) {
    Inputs in = make_inputs(2, 37, 3, 8, W, 100 + W, 0.0);  // lam == 0
    auto gated = forward(in, AttnMode::gatedfwa);
    auto swa = forward(in, AttnMode::swa);
    EXPECT_LT(max_abs_diff(gated, swa), 1e-12) << "W=" << W;
    if (W >= in.s.T) {
      EXPECT_LT(max_abs_diff(swa, forward(in, AttnMode::full)), 1e-12) << "W=" << W;
    }
  }
}

TEST(AttentionCpu, WindowOneCopiesValues) {
  Inputs in = make_inputs(1, 23, 2, 16, 1, 7, 2.0);
  EXPECT_LT(max_abs_diff(forward(in, AttnMode::gatedfwa), in.v), 1e-12);
}

TEST(AttentionCpu, GateChangesOutput) {
  Inputs in = make_inputs(1, 29, 2, 8, 9, 8, 1.0);
  EXPECT_GT(max_abs_diff(forward(in, AttnMode::gatedfwa), forward(in, AttnMode::swa)), 1e-3);
}

// d(sum(o * w))/dx by central differences against the analytic backward, for q, k, v and lam.
void check_backward(AttnMode mode, int H, int Hkv, int W, uint64_t seed) {
  Inputs in = make_inputs(2, 13, H, 4, W, seed, 0.7, Hkv);
  std::mt19937_64 rng(seed + W);
  std::vector<double> lse, wts = randn(in.q.size(), rng);
  auto o = forward(in, mode, &lse);
  std::vector<double> dq(in.q.size(), NAN), dk(in.k.size(), NAN), dv(in.v.size(), NAN), dlam(in.lam.size(), NAN);
  cpu::attention_backward(in.s, mode, in.q.data(), in.k.data(), in.v.data(), in.lam.data(), o.data(), lse.data(),
                          wts.data(), dq.data(), dk.data(), dv.data(), dlam.data());
  auto objective = [&](Inputs& x) {
    auto out = forward(x, mode);
    double acc = 0;
    for (size_t i = 0; i < out.size(); ++i) acc += out[i] * wts[i];
    return acc;
  };
  auto check = [&](std::vector<double> Inputs::*field, const std::vector<double>& grad, const char* name) {
    const double h = 1e-6;
    for (size_t i = 0; i < grad.size(); i += 3) {
      Inputs x = in;
      (x.*field)[i] += h;
      const double up = objective(x);
      (x.*field)[i] -= 2 * h;
      const double down = objective(x);
      const double fd = (up - down) / (2 * h);
      ASSERT_NEAR(grad[i], fd, 1e-6 * (1 + std::fabs(fd)))
          << name << "[" << i << "] mode " << attn_mode_name(mode) << " H=" << H << " Hkv=" << Hkv << " W=" << W;
    }
  };
  check(&Inputs::q, dq, "dq");
  check(&Inputs::k, dk, "dk");
  check(&Inputs::v, dv, "dv");
  if (mode == AttnMode::gatedfwa) check(&Inputs::lam, dlam, "dlam");
}

TEST(AttentionCpu, BackwardMatchesFiniteDifferences) {
  for (AttnMode mode : {AttnMode::full, AttnMode::swa, AttnMode::gatedfwa})
    for (int W : {1, 2, 5, 12, 13, 18}) check_backward(mode, 2, 2, W, 1000 + W);
}

// Grouped-query attention: 4 query heads over 1 (multi-query), 2 and 4 K/V heads. dk and dv collect the
// gradients of every query head of the group.
TEST(AttentionCpu, GroupedQueryBackwardMatchesFiniteDifferences) {
  for (AttnMode mode : {AttnMode::full, AttnMode::swa, AttnMode::gatedfwa})
    for (int Hkv : {1, 2, 4})
      for (int W : {1, 5, 13}) check_backward(mode, 4, Hkv, W, 2000 + 10 * Hkv + W);
}

// Grouped-query attention equals multi-head attention over K/V heads copied to every query head of their
// group: the same o, lse, dq and dlam, and dk, dv equal to the sums of the copies' gradients.
TEST(AttentionCpu, GroupedQueryEqualsMultiHeadOverCopiedKeysAndValues) {
  const int B = 2, T = 11, H = 6, Hkv = 2, D = 4, G = H / Hkv;
  for (AttnMode mode : {AttnMode::full, AttnMode::swa, AttnMode::gatedfwa}) {
    Inputs gqa = make_inputs(B, T, H, D, 4, 77, 0.5, Hkv);
    Inputs mha = gqa;
    mha.s.Hkv = H;
    mha.k.assign(gqa.q.size(), 0.0);
    mha.v.assign(gqa.q.size(), 0.0);
    for (size_t r = 0; r < size_t(B) * T; ++r)
      for (int h = 0; h < H; ++h)
        for (int d = 0; d < D; ++d) {
          mha.k[(r * H + h) * D + d] = gqa.k[(r * Hkv + h / G) * D + d];
          mha.v[(r * H + h) * D + d] = gqa.v[(r * Hkv + h / G) * D + d];
        }
    std::vector<double> lse_g, lse_m;
    const auto og = forward(gqa, mode, &lse_g), om = forward(mha, mode, &lse_m);
    EXPECT_LT(max_abs_diff(og, om), 1e-12) << attn_mode_name(mode);
    EXPECT_LT(max_abs_diff(lse_g, lse_m), 1e-12) << attn_mode_name(mode);

    std::mt19937_64 rng(5);
    const std::vector<double> dout = randn(og.size(), rng);
    std::vector<double> dq_g(og.size()), dk_g(gqa.k.size()), dv_g(gqa.v.size()), dl_g(gqa.lam.size());
    std::vector<double> dq_m(og.size()), dk_m(og.size()), dv_m(og.size()), dl_m(gqa.lam.size());
    cpu::attention_backward(gqa.s, mode, gqa.q.data(), gqa.k.data(), gqa.v.data(), gqa.lam.data(), og.data(),
                            lse_g.data(), dout.data(), dq_g.data(), dk_g.data(), dv_g.data(), dl_g.data());
    cpu::attention_backward(mha.s, mode, mha.q.data(), mha.k.data(), mha.v.data(), mha.lam.data(), om.data(),
                            lse_m.data(), dout.data(), dq_m.data(), dk_m.data(), dv_m.data(), dl_m.data());
    EXPECT_LT(max_abs_diff(dq_g, dq_m), 1e-12);
    if (mode == AttnMode::gatedfwa) {
      EXPECT_LT(max_abs_diff(dl_g, dl_m), 1e-12);
    }
    std::vector<double> dk_sum(dk_g.size(), 0.0), dv_sum(dv_g.size(), 0.0);
    for (size_t r = 0; r < size_t(B) * T; ++r)
      for (int h = 0; h < H; ++h)
        for (int d = 0; d < D; ++d) {
          dk_sum[(r * Hkv + h / G) * D + d] += dk_m[(r * H + h) * D + d];
          dv_sum[(r * Hkv + h / G) * D + d] += dv_m[(r * H + h) * D + d];
        }
    EXPECT_LT(max_abs_diff(dk_g, dk_sum), 1e-12);
    EXPECT_LT(max_abs_diff(dv_g, dv_sum), 1e-12);
  }
}

TEST(AttentionCpu, KvHeadsThatDoNotDivideTheQueryHeadsAreRefused) {
  Inputs in = make_inputs(1, 3, 4, 2, 2, 1, 0.1, 4);
  in.s.Hkv = 3;
  std::vector<double> o(in.q.size()), lse(size_t(4) * 3);
  try {
    cpu::attention_forward(in.s, AttnMode::swa, in.q.data(), in.k.data(), in.v.data(), in.lam.data(), o.data(),
                           lse.data());
    FAIL() << "Hkv 3 of H 4 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("K/V heads (3) must divide the 4 query heads"), std::string::npos)
        << e.what();
  }
}

TEST(GateCpu, ForwardMatchesFormulaAndScan) {
  const int B = 2, T = 11, H = 3;
  std::mt19937_64 rng(5);
  auto hg = randn(size_t(B) * T * H, rng, 2.0), pre = randn(hg.size(), rng);
  std::vector<double> logf(hg.size()), lam(hg.size());
  cpu::gate_forward(B, T, H, hg.data(), pre.data(), logf.data(), lam.data());
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      double run = 0;
      for (int t = 0; t < T; ++t) {
        const size_t i = (size_t(b) * T + t) * H + h;
        const double beta = 1 + (pre[i] > 0 ? pre[i] : std::exp(pre[i]) - 1);
        const double expect = std::log(1.0 / (1.0 + std::exp(-beta * hg[i]))) / (beta + 1e-3);
        EXPECT_NEAR(logf[i], expect, 1e-12);
        EXPECT_LE(logf[i], 0.0);
        run += expect;
        EXPECT_NEAR(lam[i], run, 1e-12);
      }
    }
}

TEST(GateCpu, BackwardMatchesFiniteDifferences) {
  const int B = 2, T = 9, H = 2;
  std::mt19937_64 rng(6);
  auto hg = randn(size_t(B) * T * H, rng, 2.0), pre = randn(hg.size(), rng), wts = randn(hg.size(), rng);
  auto objective = [&](const std::vector<double>& g, const std::vector<double>& p) {
    std::vector<double> logf(g.size()), lam(g.size());
    cpu::gate_forward(B, T, H, g.data(), p.data(), logf.data(), lam.data());
    double acc = 0;
    for (size_t i = 0; i < lam.size(); ++i) acc += lam[i] * wts[i];
    return acc;
  };
  std::vector<double> dhg(hg.size(), NAN), dpre(hg.size(), NAN);
  cpu::gate_backward(B, T, H, hg.data(), pre.data(), wts.data(), dhg.data(), dpre.data());
  const double h = 1e-6;
  for (size_t i = 0; i < hg.size(); ++i) {
    auto a = hg, b = hg;
    a[i] += h;
    b[i] -= h;
    EXPECT_NEAR(dhg[i], (objective(a, pre) - objective(b, pre)) / (2 * h), 1e-7);
    auto c = pre, d = pre;
    c[i] += h;
    d[i] -= h;
    EXPECT_NEAR(dpre[i], (objective(hg, c) - objective(hg, d)) / (2 * h), 1e-7);
  }
}
