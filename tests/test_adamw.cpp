// AdamW and gradient clipping against hand-computed numbers; decay only on 2-D tensors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/adamw_cpu.h"
#include "model/cpu_backend.h"

using namespace gfwa;

// lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1, grad_scale 0.5, p0 = (1, -2).
// Step 1, raw grad (0.4, -0.2) -> g = (0.2, -0.1):
//   m = 0.1 g = (0.02, -0.01);  v = 0.001 g^2 = (4e-5, 1e-5)
//   bias corrections 1 - 0.9 = 0.1 and 1 - 0.999 = 0.001: mhat = (0.2, -0.1), vhat = (0.04, 0.01)
//   u = mhat / (sqrt(vhat) + eps) = (0.2 / 0.20000001, -0.1 / 0.10000001) = (0.99999995, -0.9999999)
//   p = p - 0.1 (u + 0.1 p) = (1 - 0.109999995, -2 + 0.11999999) = (0.890000005, -1.88000001)
// Step 2, raw grad (-0.2, 0.6) -> g = (-0.1, 0.3):
//   m = 0.9 (0.02, -0.01) + 0.1 (-0.1, 0.3) = (0.008, 0.021)
//   v = 0.999 (4e-5, 1e-5) + 0.001 (0.01, 0.09) = (4.996e-5, 9.999e-5)
//   corrections 1 - 0.81 = 0.19 and 1 - 0.998001 = 0.001999:
//   mhat = (0.0421052632, 0.1105263158), vhat = (0.0249924962, 0.0500200100)
//   sqrt(vhat) = (0.1580901523, 0.2236515370), u = (0.2663370228, 0.4941898112)
//   p = (0.890000005 - 0.1 (0.2663370228 + 0.0890000005), -1.88000001 - 0.1 (0.4941898112 - 0.188000001))
//     = (0.8544663027, -1.9106189910)
TEST(AdamW, TwoHandComputedSteps) {
  std::vector<double> p = {1.0, -2.0}, m(2, 0.0), v(2, 0.0);
  AdamWStep h{0.1, 0.9, 0.999, 1e-8, 0.1, 0.5, 1};
  const std::vector<double> g1 = {0.4, -0.2}, g2 = {-0.2, 0.6};
  cpu::adamw_update(p.data(), g1.data(), m.data(), v.data(), 2, h, true);
  EXPECT_NEAR(m[0], 0.02, 1e-15);
  EXPECT_NEAR(m[1], -0.01, 1e-15);
  EXPECT_NEAR(v[0], 4e-5, 1e-18);
  EXPECT_NEAR(v[1], 1e-5, 1e-18);
  EXPECT_NEAR(p[0], 0.890000005, 1e-12);
  EXPECT_NEAR(p[1], -1.88000001, 1e-12);
  h.t = 2;
  cpu::adamw_update(p.data(), g2.data(), m.data(), v.data(), 2, h, true);
  EXPECT_NEAR(m[0], 0.008, 1e-15);
  EXPECT_NEAR(m[1], 0.021, 1e-15);
  EXPECT_NEAR(v[0], 4.996e-5, 1e-18);
  EXPECT_NEAR(v[1], 9.999e-5, 1e-18);
  EXPECT_NEAR(p[0], 0.8544663027, 1e-10);
  EXPECT_NEAR(p[1], -1.9106189910, 1e-10);
  // fp32 twin: same numbers to fp32 precision
  std::vector<float> pf = {1.0f, -2.0f}, mf(2, 0.0f), vf(2, 0.0f), g1f = {0.4f, -0.2f}, g2f = {-0.2f, 0.6f};
  h.t = 1;
  cpu::adamw_update(pf.data(), g1f.data(), mf.data(), vf.data(), 2, h, true);
  h.t = 2;
  cpu::adamw_update(pf.data(), g2f.data(), mf.data(), vf.data(), 2, h, true);
  EXPECT_NEAR(pf[0], 0.8544663027, 1e-6);
  EXPECT_NEAR(pf[1], -1.9106189910, 1e-6);
}

// Without decay, step 1 of the case above: p = 1 - 0.1 * 0.99999995 = 0.900000005.
TEST(AdamW, NoDecayWhenNotRequested) {
  std::vector<double> p = {1.0}, m = {0.0}, v = {0.0}, g = {0.4};
  cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), 1, {0.1, 0.9, 0.999, 1e-8, 0.1, 0.5, 1}, false);
  EXPECT_NEAR(p[0], 0.900000005, 1e-12);
}

// Clipping: grads (3, 4, 0, ...) have norm 5; clip at 1 gives grad_scale 0.2, so the first moments
// are 0.1 * 0.2 * (3, 4) = (0.06, 0.08) and the second 0.001 * (0.6^2, 0.8^2) = (3.6e-4, 6.4e-4).
TEST(AdamW, ClippingFromTheGlobalNorm) {
  std::vector<double> g(37, 0.0);
  g[5] = 3.0;
  g[31] = 4.0;
  const double norm = std::sqrt(cpu::sum_squares(g.data(), g.size()));
  EXPECT_EQ(norm, 5.0);
  EXPECT_EQ(clip_scale(norm, 1.0), 0.2);
  EXPECT_EQ(clip_scale(norm, 10.0), 1.0);
  EXPECT_EQ(clip_scale(norm, 0.0), 1.0);  // disabled
  std::vector<double> p(37, 1.0), m(37, 0.0), v(37, 0.0);
  cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), g.size(),
                    {0.1, 0.9, 0.999, 1e-8, 0.0, clip_scale(norm, 1.0), 1}, true);
  EXPECT_NEAR(m[5], 0.06, 1e-15);
  EXPECT_NEAR(m[31], 0.08, 1e-15);
  EXPECT_NEAR(v[5], 3.6e-4, 1e-18);
  EXPECT_NEAR(v[31], 6.4e-4, 1e-18);
  EXPECT_EQ(m[0], 0.0);
  EXPECT_EQ(p[0], 1.0);
}

// The norm is summed over fixed chunks: same bits for any thread count, and the exact value.
TEST(AdamW, SumSquaresIsThreadCountIndependent) {
  std::vector<float> x(100003);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(double(i))) * 0.01f;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = cpu::sum_squares(x.data(), x.size());
  omp_set_num_threads(2);
  const double two = cpu::sum_squares(x.data(), x.size());
  omp_set_num_threads(saved);
  EXPECT_EQ(one, two);
  long double ref = 0;
  for (float f : x) ref += (long double)f * f;
  EXPECT_NEAR(one, double(ref), 1e-12 * double(ref));
}

// Backend: with zero gradients the Adam term is 0, so a step only decays: 2-D tensors shrink by
// exactly (1 - lr * wd) = 0.95, 1-D tensors (norm weights, gate bias) stay bit-identical.
TEST(AdamW, BackendDecaysOnlyMatrices) {
  ModelConfig cfg;
  cfg.vocab_size = 13;
  cfg.n_layers = 2;
  cfg.d_model = 8;
  cfg.n_heads = 2;
  cfg.ffn_hidden = 12;
  cfg.attention.mode = AttnMode::gatedfwa;
  cfg.attention.window = 3;
  cfg.attention.token_shift = true;
  cfg.attention.gate_bias_init = 1.5f;
  auto be = make_cpu_backend(cfg, 1, 4);
  be->init_params(9);
  std::vector<float> before, after;
  be->get_params(before);
  be->zero_grad();
  be->adamw_update({0.1f, 0.9f, 0.999f, 1e-8f, 0.5f, 1.0f, 1});
  be->get_params(after);
  int matrices = 0, vectors = 0;
  for (const ParamTensor& t : be->layout().tensors()) {
    EXPECT_EQ(t.decay, t.shape.size() == 2) << t.name;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      if (t.decay)
        ASSERT_NEAR(after[i], before[i] * (1.0 - 0.1 * 0.5), 1e-7 * std::fabs(before[i])) << t.name;
      else
        ASSERT_EQ(after[i], before[i]) << t.name;
    }
    (t.decay ? matrices : vectors)++;
  }
  EXPECT_GT(matrices, 10);
  EXPECT_GT(vectors, 5);
  EXPECT_THROW(be->adamw_update({0.1f, 0.9f, 0.999f, 1e-8f, 0.5f, 1.0f, 0}), std::invalid_argument);
}
