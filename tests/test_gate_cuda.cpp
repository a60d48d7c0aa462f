// CUDA gate scan (forward and backward) against the CPU reference in double, with hg and pre dense and as
// columns of packed projection rows (the cuda backend's skinny projections, other columns NaN: never read).
// Bounds: the GPU evaluates each log-gate in fp32 (relative error ~1e-7) and accumulates in double, then
// rounds to fp32 (6e-8): relative L2 1e-5 leaves a wide margin yet catches a wrong term or a lost chunk
// (one token of T = 4e4 changes lam by ~2.5e-5 of its scale).
#ifdef GFWA_WITH_CUDA
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/gate.h"
#include "kernels/gate_cpu.h"

using namespace gfwa;
using gfwa::test::DeviceBuffer;

namespace {

struct GateCase {
  int B, T, H;
  double hg_mean;  // negative: strong decay (large |lam|)
  uint64_t seed;
  bool packed = false;  // hg at column 1 and pre at column H + 2 of rows of 2H + 3 floats
};

void run_gate_case(const GateCase& c) {
  const size_t n = size_t(c.B) * c.T * c.H;
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> hg(n), pre(n), dlam(n);
  for (size_t i = 0; i < n; ++i) {
    hg[i] = float(c.hg_mean) + 2.f * nd(rng);
    pre[i] = nd(rng);
    dlam[i] = nd(rng);
  }
  const int ld = c.packed ? 2 * c.H + 3 : c.H, hg_col = c.packed ? 1 : 0, pre_col = c.packed ? c.H + 2 : 0;
  const size_t rows = size_t(c.B) * c.T;
  std::vector<float> hg_in(rows * ld, std::nanf("")), pre_in(hg_in);
  std::vector<float>& pre_rows = c.packed ? hg_in : pre_in;  // packed: one buffer holds both
  for (size_t r = 0; r < rows; ++r)
    for (int h = 0; h < c.H; ++h) {
      hg_in[r * ld + hg_col + h] = hg[r * c.H + h];
      pre_rows[r * ld + pre_col + h] = pre[r * c.H + h];
    }
  DeviceBuffer<float> d_hg(rows * ld), d_pre(rows * ld), d_lam(n), d_dlam(n), d_dhg(n), d_dpre(n);
  d_hg.upload(hg_in);
  d_pre.upload(pre_in);
  d_dlam.upload(dlam);
  d_lam.poison();
  d_dhg.poison();
  d_dpre.poison();
  const float* g_hg = d_hg.get() + hg_col;
  const float* g_pre = (c.packed ? d_hg.get() : d_pre.get()) + pre_col;
  cuda::gate_forward(g_hg, g_pre, ld, d_lam.get(), c.B, c.T, c.H, nullptr);
  cuda::gate_backward(g_hg, g_pre, ld, d_dlam.get(), d_dhg.get(), d_dpre.get(), c.B, c.T, c.H, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());

  const std::vector<double> hgd(hg.begin(), hg.end()), pred(pre.begin(), pre.end()), dlamd(dlam.begin(), dlam.end());
  std::vector<double> logf(n), lam_ref(n), dhg_ref(n), dpre_ref(n);
  cpu::gate_forward(c.B, c.T, c.H, hgd.data(), pred.data(), logf.data(), lam_ref.data());
  cpu::gate_backward(c.B, c.T, c.H, hgd.data(), pred.data(), dlamd.data(), dhg_ref.data(), dpre_ref.data());
  auto as_double = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
  const double e_lam = test::rel_l2(as_double(d_lam.download()), lam_ref);
  const double e_dhg = test::rel_l2(as_double(d_dhg.download()), dhg_ref);
  const double e_dpre = test::rel_l2(as_double(d_dpre.download()), dpre_ref);
  std::printf("  gate B%d T%d H%d%s: lam %.1e dhg %.1e dpre %.1e\n", c.B, c.T, c.H, c.packed ? " packed" : "", e_lam,
              e_dhg, e_dpre);
  EXPECT_LT(e_lam, 1e-5);
  EXPECT_LT(e_dhg, 1e-5);
  EXPECT_LT(e_dpre, 1e-5);
}

TEST(GateCuda, MatchesCpuReference) {
  GFWA_SKIP_WITHOUT_GPU();
  run_gate_case({2, 1, 3, 0.0, 1});
  run_gate_case({2, 255, 3, 0.0, 2});
  run_gate_case({3, 1001, 5, 2.0, 3});
  run_gate_case({2, 255, 3, 0.0, 6, true});
  run_gate_case({3, 1001, 5, 2.0, 7, true});
}

TEST(GateCuda, LongSequence) {
  GFWA_SKIP_WITHOUT_GPU();
  run_gate_case({1, 40000 + 3, 2, -1.0, 4});
  run_gate_case({2, 32768, 3, 3.0, 5});
}

}  // namespace
#endif  // GFWA_WITH_CUDA
