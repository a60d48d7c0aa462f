// Muon on the CPU (kernels/muon_cpu.h, CpuBackend::muon_update): Newton-Schulz against
// hand-computed and closed-form results and its near-unit singular values; momentum and update
// against hand-computed numbers; which tensors take Muon and which AdamW; and the ZeRO-1 scheme of
// the cuda backend (momentum sharded by element, Newton-Schulz of whole matrices) replayed on the
// CPU: it gives the unsharded update bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/adamw_cpu.h"
#include "kernels/muon_cpu.h"
#include "model/cpu_backend.h"
#include "model/zero1_shards.h"
#include "model_test_params.h"

using namespace gfwa;

namespace {

// p^k(s) for the quintic p(s) = a s + b s^3 + c s^5 of muon_step.h: what Newton-Schulz does to a
// singular value s of the normalised matrix.
double ns_scalar(double s, int steps) {
  for (int i = 0; i < steps; ++i) s = kNsA * s + kNsB * s * s * s + kNsC * s * s * s * s * s;
  return s;
}

// Eigenvalues of a symmetric n x n matrix (cyclic Jacobi rotations), ascending.
std::vector<double> symmetric_eigenvalues(std::vector<double> a, int n) {
  auto at = [&](int i, int j) -> double& { return a[size_t(i) * n + j]; };
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0;
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) off += at(i, j) * at(i, j);
    if (off < 1e-26) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        if (std::fabs(at(p, q)) < 1e-300) continue;
        const double theta = (at(q, q) - at(p, p)) / (2.0 * at(p, q));
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; ++k) {  // A = A J (columns p, q)
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - s * akq;
          at(k, q) = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // A = J^T A (rows p, q)
          const double apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - s * aqk;
          at(q, k) = s * apk + c * aqk;
        }
      }
  }
  std::vector<double> e(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) e[size_t(i)] = at(i, i);
  std::sort(e.begin(), e.end());
  return e;
}

// Singular values of a row-major rows x cols matrix: square roots of the eigenvalues of the
// smaller Gram matrix.
std::vector<double> singular_values(const std::vector<float>& x, int rows, int cols) {
  const bool tall = rows > cols;
  const int m = tall ? cols : rows, n = tall ? rows : cols;
  auto el = [&](int i, int k) { return double(tall ? x[size_t(k) * cols + i] : x[size_t(i) * cols + k]); };
  std::vector<double> g(size_t(m) * m, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j)
      for (int k = 0; k < n; ++k) g[size_t(i) * m + j] += el(i, k) * el(j, k);
  std::vector<double> s = symmetric_eigenvalues(g, m);
  for (double& v : s) v = std::sqrt(std::max(0.0, v));
  return s;
}

// A random n x n orthogonal matrix (Gram-Schmidt of Gaussian rows), row-major.
std::vector<double> random_orthogonal(int n, std::mt19937_64& rng) {
  std::normal_distribution<double> n01(0.0, 1.0);
  std::vector<double> q(size_t(n) * n);
  for (double& v : q) v = n01(rng);
  for (int i = 0; i < n; ++i) {
    double* r = &q[size_t(i) * n];
    for (int j = 0; j < i; ++j) {
      const double* u = &q[size_t(j) * n];
      double d = 0.0;
      for (int k = 0; k < n; ++k) d += r[k] * u[k];
      for (int k = 0; k < n; ++k) r[k] -= d * u[k];
    }
    double norm = 0.0;
    for (int k = 0; k < n; ++k) norm += r[k] * r[k];
    for (int k = 0; k < n; ++k) r[k] /= std::sqrt(norm);
  }
  return q;
}

}  // namespace

// G = R diag(3, 4) with the rotation R = [[0.6, -0.8], [0.8, 0.6]]: G = [[1.8, -3.2], [2.4, 2.4]],
// ||G||_F = 5, so X0 = R diag(0.6, 0.8) and Newton-Schulz maps each singular value through p:
//   0.6 -> 1.1932694 -> 0.9119177 -> 0.8011377 -> 0.9747024 -> 0.7228762
//   0.8 -> 0.9764819 -> 0.7211176 -> 1.0894568 -> 0.6960447 -> 1.1192039
// (p(0.6) = 3.4445 * 0.6 - 4.775 * 0.216 + 2.0315 * 0.07776 = 1.1932694, and so on), giving
// R diag(0.7228762, 1.1192039) = [[0.4337257, -0.8953631], [0.5783009, 0.6715224]].
// The same rows with a zero row below (3 x 2, tall: iterated as its transpose) and the transpose
// (2 x 3, wide) give the same numbers in the same places.
TEST(MuonNewtonSchulz, HandComputedTwoByTwoAndThreeByTwo) {
  EXPECT_NEAR(ns_scalar(0.6, 1), 1.1932694, 1e-7);
  EXPECT_NEAR(ns_scalar(0.6, 5), 0.7228762, 1e-7);
  EXPECT_NEAR(ns_scalar(0.8, 5), 1.1192039, 1e-7);
  const std::vector<double> want = {0.4337257, -0.8953631, 0.5783009, 0.6715224};

  const std::vector<double> g2 = {1.8, -3.2, 2.4, 2.4};
  std::vector<double> o2(4);
  cpu::newton_schulz(g2.data(), o2.data(), 2, 2, 5);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(o2[size_t(i)], want[size_t(i)], 1e-6) << i;

  const std::vector<float> g32 = {1.8f, -3.2f, 2.4f, 2.4f, 0.0f, 0.0f};  // 3 x 2
  std::vector<float> o32(6);
  cpu::newton_schulz(g32.data(), o32.data(), 3, 2, 5);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(o32[size_t(i)], want[size_t(i)], 2e-5) << i;
  EXPECT_EQ(o32[4], 0.0f);
  EXPECT_EQ(o32[5], 0.0f);

  const std::vector<float> g23 = {1.8f, 2.4f, 0.0f, -3.2f, 2.4f, 0.0f};  // the 2 x 3 transpose
  std::vector<float> o23(6);
  cpu::newton_schulz(g23.data(), o23.data(), 2, 3, 5);
  const int at[4] = {0, 3, 1, 4};  // where want[i] lands in the transpose
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(o23[size_t(at[i])], want[size_t(i)], 2e-5) << i;
  EXPECT_EQ(o23[2], 0.0f);
  EXPECT_EQ(o23[5], 0.0f);

  // One step: X1 = p(X0) = R diag(p(0.6), p(0.8)).
  cpu::newton_schulz(g2.data(), o2.data(), 2, 2, 1);
  EXPECT_NEAR(o2[0], 0.6 * 1.1932694, 1e-6);
  EXPECT_NEAR(o2[1], -0.8 * 0.9764819, 1e-6);
}

// G = U diag(s) V^T with known factors: the result must be U diag(p^5(s / ||G||_F)) V^T (the
// singular vectors kept, each singular value mapped by the quintic), wide, tall and square.
TEST(MuonNewtonSchulz, MatchesTheClosedFormOnAKnownSpectrum) {
  std::mt19937_64 rng(77);
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{12, 20}, {20, 12}, {16, 16}}) {
    const int k = std::min(rows, cols);
    const std::vector<double> u = random_orthogonal(rows, rng), v = random_orthogonal(cols, rng);
    std::vector<double> s(static_cast<size_t>(k));
    double fro = 0.0;
    for (int i = 0; i < k; ++i) {
      s[size_t(i)] = 0.05 * std::pow(60.0, double(i) / (k - 1));  // 0.05 .. 3
      fro += s[size_t(i)] * s[size_t(i)];
    }
    fro = std::sqrt(fro);
    std::vector<float> g(size_t(rows) * cols);
    std::vector<double> want(g.size());
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        double x = 0.0, y = 0.0;
        for (int i = 0; i < k; ++i) {
          const double uv = u[size_t(r) * rows + i] * v[size_t(c) * cols + i];  // U[r][i] V[c][i]
          x += uv * s[size_t(i)];
          y += uv * ns_scalar(s[size_t(i)] / fro, 5);
        }
        g[size_t(r) * cols + c] = float(x);
        want[size_t(r) * cols + c] = y;
      }
    std::vector<float> o(g.size());
    cpu::newton_schulz(g.data(), o.data(), rows, cols, 5);
    double worst = 0.0;
    for (size_t i = 0; i < o.size(); ++i) worst = std::max(worst, std::fabs(double(o[i]) - want[i]));
    EXPECT_LT(worst, 1e-4) << rows << " x " << cols;
  }
}

// Gaussian matrices (wide, tall, and a square one made well conditioned): every singular value of
// the result lies in the band the coefficients are tuned for, [0.68, 1.21] (muon_step.h).
TEST(MuonNewtonSchulz, SingularValuesAreNearOne) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{24, 64}, {64, 24}, {32, 32}}) {
    std::vector<float> g(size_t(rows) * cols), o(g.size());
    for (float& x : g) x = n01(rng);
    if (rows == cols)
      for (int i = 0; i < rows; ++i) g[size_t(i) * cols + i] += 20.0f;
    const std::vector<double> sg = singular_values(g, rows, cols);
    double fro = 0.0;
    for (double x : sg) fro += x * x;
    EXPECT_GT(sg.front() / std::sqrt(fro), 2e-3) << "the band holds from 2e-3 up";
    cpu::newton_schulz(g.data(), o.data(), rows, cols, 5);
    const std::vector<double> so = singular_values(o, rows, cols);
    ASSERT_EQ(so.size(), size_t(std::min(rows, cols)));
    EXPECT_GE(so.front(), 0.675) << rows << " x " << cols;
    EXPECT_LE(so.back(), 1.21) << rows << " x " << cols;
  }
}

// The zero matrix stays zero (the norm's epsilon keeps 0 / 0 away).
TEST(MuonNewtonSchulz, ZeroStaysZero) {
  const std::vector<float> g(12, 0.0f);
  std::vector<float> o(12, 1.0f);
  cpu::newton_schulz(g.data(), o.data(), 3, 4, 5);
  for (float x : o) EXPECT_EQ(x, 0.0f);
}

// momentum 0.9, grad_scale 0.5, raw grads (0.4, -0.2) then (-0.2, 0.6):
//   step 1: g = (0.2, -0.1); buf = (0.2, -0.1); Nesterov u = g + 0.9 buf = (0.38, -0.19)
//   step 2: g = (-0.1, 0.3); buf = 0.9 (0.2, -0.1) + g = (0.08, 0.21); u = g + 0.9 buf = (-0.028, 0.489)
// Without Nesterov, u = buf.
TEST(Muon, MomentumHandComputed) {
  for (bool nesterov : {true, false}) {
    const MuonStep h{0.1, 0.9, nesterov, 5, 0.0, 0.5};
    std::vector<double> buf(2, 0.0), u(2);
    const std::vector<double> g1 = {0.4, -0.2}, g2 = {-0.2, 0.6};
    cpu::muon_momentum(g1.data(), buf.data(), u.data(), 2, h);
    EXPECT_NEAR(buf[0], 0.2, 1e-15);
    EXPECT_NEAR(buf[1], -0.1, 1e-15);
    EXPECT_NEAR(u[0], nesterov ? 0.38 : 0.2, 1e-15);
    EXPECT_NEAR(u[1], nesterov ? -0.19 : -0.1, 1e-15);
    cpu::muon_momentum(g2.data(), buf.data(), u.data(), 2, h);
    EXPECT_NEAR(buf[0], 0.08, 1e-15);
    EXPECT_NEAR(buf[1], 0.21, 1e-15);
    EXPECT_NEAR(u[0], nesterov ? -0.028 : 0.08, 1e-15);
    EXPECT_NEAR(u[1], nesterov ? 0.489 : 0.21, 1e-15);
  }
  // u may overwrite the gradient (the cuda backend does so)
  std::vector<float> g = {0.4f, -0.2f}, buf(2, 0.0f);
  cpu::muon_momentum(g.data(), buf.data(), g.data(), 2, MuonStep{0.1, 0.9, true, 5, 0.0, 0.5});
  EXPECT_NEAR(g[0], 0.38f, 1e-7f);
  EXPECT_NEAR(g[1], -0.19f, 1e-7f);
}

// lr 0.1, weight decay 0.2, p = (1, -2), o = (0.5, -0.25):
//   a 4 x 1 matrix (scale sqrt(4) = 2): p - 0.02 p - 0.2 o = (0.88, -1.91)
//   a 1 x 4 matrix (scale 1):           p - 0.02 p - 0.1 o = (0.93, -1.935)
TEST(Muon, ApplyHandComputed) {
  EXPECT_EQ(muon_shape_scale(4, 1), 2.0);
  EXPECT_EQ(muon_shape_scale(1, 4), 1.0);
  EXPECT_EQ(muon_shape_scale(3072, 768), 2.0);
  const MuonStep h{0.1, 0.95, true, 5, 0.2, 1.0};
  const std::vector<double> o = {0.5, -0.25};
  std::vector<double> p = {1.0, -2.0};
  cpu::muon_apply(p.data(), o.data(), 2, h, 4, 1);
  EXPECT_NEAR(p[0], 0.88, 1e-15);
  EXPECT_NEAR(p[1], -1.91, 1e-15);
  p = {1.0, -2.0};
  cpu::muon_apply(p.data(), o.data(), 2, h, 1, 4);
  EXPECT_NEAR(p[0], 0.93, 1e-15);
  EXPECT_NEAR(p[1], -1.935, 1e-15);
}

namespace {

ModelConfig muon_test_model() {
  return gfwa::test::two_layer_model(13, 16, 24, AttnMode::gatedfwa, 3, true);
}

// A backend of the test model at `seed` with gradients of one random batch, and optimizer state
// m (random, so that momentum carries over) and v (random for AdamW's tensors, 0 for Muon's).
std::unique_ptr<Backend> backend_with_grads(uint64_t seed) {
  auto be = make_cpu_backend(muon_test_model(), 2, 6);
  be->init_params(seed);
  std::mt19937_64 rng(seed);
  std::vector<int32_t> in(12), tg(12);
  for (auto& t : in) t = int32_t(rng() % 13);
  for (auto& t : tg) t = int32_t(rng() % 13);
  be->zero_grad();
  be->forward_backward(in.data(), tg.data(), 2, 6, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 0.01f);
  std::vector<float> m(be->layout().total()), v(m.size(), 0.0f);
  for (float& x : m) x = u(rng) - 0.005f;
  for (const ParamTensor& t : be->layout().tensors())
    if (!t.hidden)
      for (size_t i = t.offset; i < t.offset + t.numel; ++i) v[i] = u(rng) * 1e-3f;
  be->set_adam_state(m, v);
  return be;
}

const MuonStep kMuon{0.02, 0.95, true, 5, 0.1, 0.5};
const AdamWStep kAdamW{3e-3, 0.9, 0.95, 1e-8, 0.1, 0.5, 3};

}  // namespace

// The attention and MLP projections (and only they) take Muon, bit for bit the kernels' composition;
// every other tensor (embedding, norms, gates, token shift) gets exactly AdamW's update.
TEST(MuonBackend, HiddenMatricesTakeMuonTheRestAdamW) {
  auto muon = backend_with_grads(3), adamw = backend_with_grads(3);
  std::vector<float> p0, g, m0, v0;
  muon->get_params(p0);
  muon->get_grads(g);
  muon->get_adam_state(m0, v0);
  muon->muon_update(kMuon, kAdamW);
  adamw->adamw_update(kAdamW);
  std::vector<float> p, m, v, pa, ma, va, g_after;
  muon->get_params(p);
  muon->get_adam_state(m, v);
  muon->get_grads(g_after);
  adamw->get_params(pa);
  adamw->get_adam_state(ma, va);
  EXPECT_EQ(g_after, g);  // the cpu backend keeps the gradients

  int hidden = 0;
  for (const ParamTensor& t : muon->layout().tensors()) {
    const std::string tail = t.name.substr(t.name.find('.', 7) + 1);  // "attn.wq" of "layers.0.attn.wq"
    const bool want_hidden = t.name.rfind("layers.", 0) == 0 &&
                             (tail == "attn.wq" || tail == "attn.wk" || tail == "attn.wv" || tail == "attn.wo" ||
                              tail == "mlp.w1" || tail == "mlp.w2" || tail == "mlp.w3");
    EXPECT_EQ(t.hidden, want_hidden) << t.name;
    const auto b = std::ptrdiff_t(t.offset), e = std::ptrdiff_t(t.offset + t.numel);
    if (!t.hidden) {
      EXPECT_TRUE(std::equal(p.begin() + b, p.begin() + e, pa.begin() + b)) << t.name;
      EXPECT_TRUE(std::equal(m.begin() + b, m.begin() + e, ma.begin() + b)) << t.name;
      EXPECT_TRUE(std::equal(v.begin() + b, v.begin() + e, va.begin() + b)) << t.name;
      continue;
    }
    ++hidden;
    std::vector<float> buf(m0.begin() + b, m0.begin() + e), u(t.numel), o(t.numel), want(p0.begin() + b, p0.begin() + e);
    cpu::muon_momentum(g.data() + t.offset, buf.data(), u.data(), t.numel, kMuon);
    cpu::newton_schulz(u.data(), o.data(), t.shape[0], t.shape[1], kMuon.ns_steps);
    cpu::muon_apply(want.data(), o.data(), t.numel, kMuon, t.shape[0], t.shape[1]);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), p.begin() + b)) << t.name;
    EXPECT_TRUE(std::equal(buf.begin(), buf.end(), m.begin() + b)) << t.name;
    EXPECT_TRUE(std::all_of(v.begin() + b, v.begin() + e, [](float x) { return x == 0.0f; })) << t.name;
    EXPECT_NE(p[t.offset], p0[t.offset]) << t.name;
  }
  EXPECT_EQ(hidden, 2 * 7);
  EXPECT_THROW(muon->muon_update(kMuon, AdamWStep{3e-3, 0.9, 0.95, 1e-8, 0.1, 0.5, 0}), std::invalid_argument);
}

// The cuda backend's ZeRO-1 Muon, replayed with the cpu kernels for several world sizes: each rank
// runs AdamW and Muon's momentum on its shard of elements (plan_shards, shard_pieces), the update
// directions are gathered, and each rank orthogonalises every hidden matrix its shard touches, whole,
// and updates its own elements of it. Parameters and state equal the unsharded update bit for bit,
// also for matrices split between ranks.
TEST(MuonZero1, ElementShardsGiveTheUnshardedUpdate) {
  auto whole = backend_with_grads(8);
  std::vector<float> p0, g, m0, v0;
  whole->get_params(p0);
  whole->get_grads(g);
  whole->get_adam_state(m0, v0);
  whole->muon_update(kMuon, kAdamW);
  std::vector<float> pw, mw, vw;
  whole->get_params(pw);
  whole->get_adam_state(mw, vw);
  const auto& ts = whole->layout().tensors();

  for (int world : {2, 3, 5}) {
    SCOPED_TRACE("world " + std::to_string(world));
    const ShardPlan plan = plan_shards(whole->layout().total(), world);
    std::vector<float> p = p0, m = m0, v = v0, u(g.size(), 0.0f);
    int split = 0;
    for (int r = 0; r < world; ++r)  // every rank on its shard; u is the all-gathered result
      for (const ShardPiece& pc : shard_pieces(ts, plan, r)) {
        const ParamTensor& t = ts[size_t(pc.tensor)];
        const size_t n = pc.end - pc.begin;
        if (t.hidden) {
          cpu::muon_momentum(g.data() + pc.begin, m.data() + pc.begin, u.data() + pc.begin, n, kMuon);
          split += n < t.numel;
        } else {
          cpu::adamw_update(p.data() + pc.begin, g.data() + pc.begin, m.data() + pc.begin, v.data() + pc.begin, n,
                            kAdamW, t.decay);
        }
      }
    EXPECT_GT(split, 0) << "no hidden matrix straddles two shards: the test would miss that case";
    for (int r = 0; r < world; ++r)
      for (const ShardPiece& pc : shard_pieces(ts, plan, r)) {
        const ParamTensor& t = ts[size_t(pc.tensor)];
        if (!t.hidden) continue;
        std::vector<float> o(t.numel);
        cpu::newton_schulz(u.data() + t.offset, o.data(), t.shape[0], t.shape[1], kMuon.ns_steps);
        cpu::muon_apply(p.data() + pc.begin, o.data() + (pc.begin - t.offset), pc.end - pc.begin, kMuon, t.shape[0],
                        t.shape[1]);
      }
    EXPECT_EQ(p, pw);
    EXPECT_EQ(m, mw);
    EXPECT_EQ(v, vw);
  }
}
