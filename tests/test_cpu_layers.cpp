// CPU layer references: finite-difference gradients (double) of every input and parameter of each
// layer, accumulate-vs-overwrite semantics, and the blocked matmul against plain loops.
// Each check uses the scalar L = <R, y> for a random R, so the backward runs with dy = R.
// Accumulated gradients start from random values G0 and are checked as (grad - G0).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <vector>

#include "grad_check.h"
#include "kernels/cross_entropy_cpu.h"
#include "kernels/embedding_cpu.h"
#include "kernels/matmul_cpu.h"
#include "kernels/rmsnorm_cpu.h"
#include "kernels/rope_cpu.h"
#include "kernels/swiglu_cpu.h"
#include "kernels/token_shift_cpu.h"

using namespace gfwa;
using namespace gfwa::testing;

namespace {

std::vector<double> minus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = a[i] - b[i];
  return r;
}

const std::vector<double> kNaN1(1, NAN);

std::vector<double> poisoned(size_t n) { return std::vector<double>(n, NAN); }

}  // namespace

TEST(CpuLayers, MatmulGradients) {
  const int N = 5, C = 7, OC = 6;
  auto x = randn(size_t(N) * C, 1), W = randn(size_t(OC) * C, 2), b = randn(OC, 3), R = randn(size_t(N) * OC, 4);
  auto loss = [&] {
    auto y = poisoned(size_t(N) * OC);
    cpu::matmul_forward(y.data(), x.data(), W.data(), b.data(), N, C, OC);
    return dot(R, y);
  };
  auto dx0 = randn(x.size(), 5), dW0 = randn(W.size(), 6), db0 = randn(b.size(), 7);
  auto dx = dx0, dW = dW0, db = db0;
  cpu::matmul_backward(dx.data(), dW.data(), db.data(), R.data(), x.data(), W.data(), N, C, OC);
  expect_grad(x.data(), minus(dx, dx0), loss, "dx");
  expect_grad(W.data(), minus(dW, dW0), loss, "dW");
  expect_grad(b.data(), minus(db, db0), loss, "db");
}

// Sizes that cross every cache block (M > 96, N > 256, K > 256) and leave ragged edges.
TEST(CpuLayers, MatmulMatchesPlainLoopsAcrossBlocks) {
  const int N = 101, C = 261, OC = 259;
  auto x = randn(size_t(N) * C, 11), W = randn(size_t(OC) * C, 12), b = randn(OC, 13), dy = randn(size_t(N) * OC, 14);
  auto y = poisoned(size_t(N) * OC);
  cpu::matmul_forward(y.data(), x.data(), W.data(), b.data(), N, C, OC);
  auto dx0 = randn(x.size(), 15), dW0 = randn(W.size(), 16), db0 = randn(b.size(), 17);
  auto dx = dx0, dW = dW0, db = db0;
  cpu::matmul_backward(dx.data(), dW.data(), db.data(), dy.data(), x.data(), W.data(), N, C, OC);
  double err = 0;
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = b[o];
      for (int c = 0; c < C; ++c) s += x[n * C + c] * W[o * C + c];
      err = std::max(err, std::fabs(s - y[n * OC + o]));
    }
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      double s = dx0[n * C + c];
      for (int o = 0; o < OC; ++o) s += dy[n * OC + o] * W[o * C + c];
      err = std::max(err, std::fabs(s - dx[n * C + c]));
    }
  for (int o = 0; o < OC; ++o) {
    double sb = db0[o];
    for (int n = 0; n < N; ++n) sb += dy[n * OC + o];
    err = std::max(err, std::fabs(sb - db[o]));
    for (int c = 0; c < C; ++c) {
      double s = dW0[o * C + c];
      for (int n = 0; n < N; ++n) s += dy[n * OC + o] * x[n * C + c];
      err = std::max(err, std::fabs(s - dW[o * C + c]));
    }
  }
  EXPECT_LT(err, 1e-11);  // sums of ~260 O(1) products: only the summation order differs
  // float twin on the same data: fp32 rounding only
  std::vector<float> xf(x.begin(), x.end()), Wf(W.begin(), W.end()), bf(b.begin(), b.end()), yf(y.size(), NAN);
  cpu::matmul_forward(yf.data(), xf.data(), Wf.data(), bf.data(), N, C, OC);
  double ferr = 0;
  for (size_t i = 0; i < y.size(); ++i) ferr = std::max(ferr, std::fabs(double(yf[i]) - y[i]));
  EXPECT_LT(ferr, 1e-4);
}

TEST(CpuLayers, RmsNormGradients) {
  const int N = 5, C = 9;
  auto x = randn(size_t(N) * C, 21), w = randn(C, 22, 0.5, 1.0), R = randn(size_t(N) * C, 23);
  const double eps = 1e-6;
  auto loss = [&] {
    auto y = poisoned(x.size()), rstd = poisoned(N);
    cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, eps);
    return dot(R, y);
  };
  auto y = poisoned(x.size()), rstd = poisoned(N);
  cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, eps);
  for (int n = 0; n < N; ++n) {  // forward against the definition
    double ms = 0;
    for (int c = 0; c < C; ++c) ms += x[n * C + c] * x[n * C + c] / C;
    for (int c = 0; c < C; ++c) EXPECT_NEAR(y[n * C + c], x[n * C + c] / std::sqrt(ms + eps) * w[c], 1e-13);
  }
  auto dx0 = randn(x.size(), 24), dw0 = randn(C, 25);
  auto dx = dx0, dw = dw0;
  cpu::rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  expect_grad(x.data(), minus(dx, dx0), loss, "dx");
  expect_grad(w.data(), minus(dw, dw0), loss, "dw");
}

TEST(CpuLayers, RopeGradientsAndInverse) {
  const int B = 2, T = 5, H = 3, D = 6;
  const double theta = 10000.0;
  auto x = randn(size_t(B) * T * H * D, 31), R = randn(x.size(), 32);
  auto loss = [&] {
    auto y = poisoned(x.size());
    cpu::rope_forward(y.data(), x.data(), B, T, H, D, theta);
    return dot(R, y);
  };
  auto dx = poisoned(x.size());
  cpu::rope_backward(dx.data(), R.data(), B, T, H, D, theta);
  expect_grad(x.data(), dx, loss, "dx");

  // Half-split pairs: feature i rotates with i + D/2 by t * theta^(-2i/D); position 0 is identity.
  auto y = poisoned(x.size());
  cpu::rope_forward(y.data(), x.data(), B, T, H, D, theta);
  const int b = 1, t = 3, h = 2, i = 1;
  const size_t base = ((size_t(b) * T + t) * H + h) * D;
  const double ang = t * std::pow(theta, -2.0 * i / D);
  EXPECT_NEAR(y[base + i], x[base + i] * std::cos(ang) - x[base + i + D / 2] * std::sin(ang), 1e-14);
  EXPECT_NEAR(y[base + i + D / 2], x[base + i] * std::sin(ang) + x[base + i + D / 2] * std::cos(ang), 1e-14);
  const size_t t0 = ((size_t(1) * T + 0) * H + 1) * D;  // b 1, t 0, h 1
  for (int d = 0; d < D; ++d) EXPECT_EQ(y[t0 + d], x[t0 + d]);
  // in place, and the backward inverts the forward
  auto z = x;
  cpu::rope_forward(z.data(), z.data(), B, T, H, D, theta);
  EXPECT_EQ(z, y);
  cpu::rope_backward(z.data(), z.data(), B, T, H, D, theta);
  for (size_t j = 0; j < x.size(); ++j) EXPECT_NEAR(z[j], x[j], 1e-14);
}

TEST(CpuLayers, TokenShiftGradients) {
  const int B = 2, T = 5, H = 2, D = 3, C = 7;
  auto k = randn(size_t(B) * T * H * D, 41), x = randn(size_t(B) * T * C, 42), ws = randn(size_t(H) * C, 43, 0.7);
  auto R = randn(k.size(), 44);
  auto loss = [&] {
    auto y = poisoned(k.size()), a = poisoned(size_t(B) * T * H);
    cpu::token_shift_forward(y.data(), a.data(), k.data(), x.data(), ws.data(), B, T, H, D, C);
    return dot(R, y);
  };
  auto y = poisoned(k.size()), a = poisoned(size_t(B) * T * H);
  cpu::token_shift_forward(y.data(), a.data(), k.data(), x.data(), ws.data(), B, T, H, D, C);
  // definition at one interior and one first position
  for (int t : {0, 3}) {
    const int b = 1, h = 1, d = 2;
    double z = 0;
    for (int c = 0; c < C; ++c) z += x[(b * T + t) * C + c] * ws[h * C + c];
    const double g = 1 / (1 + std::exp(-z));
    const size_t e = ((size_t(b) * T + t) * H + h) * D + d;
    const double prev = t > 0 ? k[e - H * D] : 0.0;
    EXPECT_NEAR(y[e], g * k[e] + (1 - g) * prev, 1e-14) << "t=" << t;
  }
  auto dk0 = randn(k.size(), 45), dx0 = randn(x.size(), 46), dws0 = randn(ws.size(), 47);
  auto dk = dk0, dx = dx0, dws = dws0;
  cpu::token_shift_backward(dk.data(), dx.data(), dws.data(), R.data(), a.data(), k.data(), x.data(), ws.data(), B, T,
                            H, D, C);
  expect_grad(k.data(), minus(dk, dk0), loss, "dk");
  expect_grad(x.data(), minus(dx, dx0), loss, "dx");
  expect_grad(ws.data(), minus(dws, dws0), loss, "dws");
}

TEST(CpuLayers, SwigluGradients) {
  const size_t n = 13;
  auto a = randn(n, 51, 2.0), b = randn(n, 52), R = randn(n, 53);
  auto loss = [&] {
    auto y = poisoned(n);
    cpu::swiglu_forward(y.data(), a.data(), b.data(), n);
    return dot(R, y);
  };
  auto y = poisoned(n);
  cpu::swiglu_forward(y.data(), a.data(), b.data(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], a[i] / (1 + std::exp(-a[i])) * b[i], 1e-14);
  auto da0 = randn(n, 54), db0 = randn(n, 55);
  auto da = da0, db = db0;
  cpu::swiglu_backward(da.data(), db.data(), R.data(), a.data(), b.data(), n);
  expect_grad(a.data(), minus(da, da0), loss, "da");
  expect_grad(b.data(), minus(db, db0), loss, "db");
}

TEST(CpuLayers, EmbeddingGradients) {
  const int V = 5, C = 4, N = 7;
  const std::vector<int32_t> tok = {3, 0, 3, 4, 1, 3, 0};  // repeats accumulate; id 2 unused
  auto E = randn(size_t(V) * C, 61), R = randn(size_t(N) * C, 62);
  auto loss = [&] {
    auto y = poisoned(size_t(N) * C);
    cpu::embedding_forward(y.data(), tok.data(), E.data(), N, C);
    return dot(R, y);
  };
  auto dE0 = randn(E.size(), 63);
  auto dE = dE0;
  cpu::embedding_backward(dE.data(), tok.data(), R.data(), N, C);
  expect_grad(E.data(), minus(dE, dE0), loss, "dE");
  for (int c = 0; c < C; ++c) EXPECT_EQ(dE[2 * C + c], dE0[2 * C + c]);
}

TEST(CpuLayers, CrossEntropyGradients) {
  const int N = 4, V = 9;
  const std::vector<int32_t> tgt = {8, 0, 3, 3};
  auto logits = randn(size_t(N) * V, 71, 3.0);
  const double dloss = 0.7;
  auto loss = [&] { return dloss * cpu::cross_entropy_forward(logits.data(), tgt.data(), N, V); };
  double ref = 0;  // definition
  for (int n = 0; n < N; ++n) {
    double s = 0;
    for (int i = 0; i < V; ++i) s += std::exp(logits[n * V + i]);
    ref += (std::log(s) - logits[n * V + tgt[n]]) / N;
  }
  EXPECT_NEAR(cpu::cross_entropy_forward(logits.data(), tgt.data(), N, V), ref, 1e-13);
  auto d = logits;
  EXPECT_NEAR(cpu::cross_entropy_forward_backward(d.data(), tgt.data(), N, V, dloss), ref, 1e-13);
  expect_grad(logits.data(), d, loss, "dlogits");
  // fp32 twin on huge logits: the max subtraction keeps it finite
  std::vector<float> big(size_t(N) * V);
  for (size_t i = 0; i < big.size(); ++i) big[i] = float(logits[i] * 100.0);
  EXPECT_TRUE(std::isfinite(cpu::cross_entropy_forward_backward(big.data(), tgt.data(), N, V, 1.0)));
  for (float v : big) EXPECT_TRUE(std::isfinite(v));
}

namespace {

// Runs f with a given OpenMP team size (restored afterwards).
void with_threads(int n, const std::function<void()>& f) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(n);
  f();
  omp_set_num_threads(saved);
}

}  // namespace

// Every backward with a cross-row reduction, at sizes above the parallel threshold, gives the same
// bits with one and two threads (fp32: the trainer's type).
TEST(CpuLayers, BackwardReductionsAreThreadCountIndependent) {
  auto rnd = [](size_t n, uint64_t seed) {
    const auto d = randn(n, seed);
    return std::vector<float>(d.begin(), d.end());
  };
  {  // matmul: dx, dW, db
    const int N = 1100, C = 9, OC = 1000;
    const auto x = rnd(size_t(N) * C, 81), W = rnd(size_t(OC) * C, 82), dy = rnd(size_t(N) * OC, 83);
    std::vector<float> r[2][3];
    for (int t : {1, 2})
      with_threads(t, [&] {
        auto& g = r[t - 1];
        g[0].assign(size_t(N) * C, 0.5f);
        g[1].assign(size_t(OC) * C, 0.5f);
        g[2].assign(OC, 0.5f);
        cpu::matmul_backward(g[0].data(), g[1].data(), g[2].data(), dy.data(), x.data(), W.data(), N, C, OC);
      });
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r[0][i], r[1][i]) << "matmul output " << i;
  }
  {  // rmsnorm: dx, dw
    const int N = 700, C = 800;
    const auto x = rnd(size_t(N) * C, 84), w = rnd(C, 85), dy = rnd(size_t(N) * C, 86);
    std::vector<float> r[2][2];
    for (int t : {1, 2})
      with_threads(t, [&] {
        std::vector<float> y(x.size()), rstd(N);
        cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6);
        auto& g = r[t - 1];
        g[0].assign(x.size(), 0.0f);
        g[1].assign(C, 0.0f);
        cpu::rmsnorm_backward(g[0].data(), g[1].data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
      });
    EXPECT_EQ(r[0][0], r[1][0]);
    EXPECT_EQ(r[0][1], r[1][1]);
  }
  {  // token shift: dk, dx, dws
    const int B = 2, T = 300, H = 4, D = 16, C = 512;
    const auto k = rnd(size_t(B) * T * H * D, 87), x = rnd(size_t(B) * T * C, 88), ws = rnd(size_t(H) * C, 89);
    const auto dy = rnd(k.size(), 90);
    std::vector<float> r[2][3];
    for (int t : {1, 2})
      with_threads(t, [&] {
        std::vector<float> y(k.size()), a(size_t(B) * T * H);
        cpu::token_shift_forward(y.data(), a.data(), k.data(), x.data(), ws.data(), B, T, H, D, C);
        auto& g = r[t - 1];
        g[0].assign(k.size(), 0.0f);
        g[1].assign(x.size(), 0.0f);
        g[2].assign(ws.size(), 0.0f);
        cpu::token_shift_backward(g[0].data(), g[1].data(), g[2].data(), dy.data(), a.data(), k.data(), x.data(),
                                  ws.data(), B, T, H, D, C);
      });
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r[0][i], r[1][i]) << "token shift output " << i;
  }
  {  // embedding scatter-add with many repeated ids; cross-entropy
    const int N = 2048, C = 512, V = 50;
    std::vector<int32_t> tok(N);
    for (int n = 0; n < N; ++n) tok[n] = (n * 7) % V;
    const auto dy = rnd(size_t(N) * C, 91), logits = rnd(size_t(64) * 5000, 92);
    std::vector<float> dE[2], dl[2];
    double loss[2];
    for (int t : {1, 2})
      with_threads(t, [&] {
        dE[t - 1].assign(size_t(V) * C, 0.0f);
        cpu::embedding_backward(dE[t - 1].data(), tok.data(), dy.data(), N, C);
        dl[t - 1] = logits;
        loss[t - 1] = cpu::cross_entropy_forward_backward(dl[t - 1].data(), tok.data(), 64, 5000, 1.0);
      });
    EXPECT_EQ(dE[0], dE[1]);
    EXPECT_EQ(dl[0], dl[1]);
    EXPECT_EQ(loss[0], loss[1]);
  }
}
