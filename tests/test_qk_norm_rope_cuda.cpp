// Attention input path on the GPU (token shift of k and v, QK-norm, RoPE; forward and backward)
// vs the composition of its CPU twins token_shift_cpu, rmsnorm_cpu and rope_cpu in double, with as many
// K/V heads as query heads and fewer (grouped-query attention). The token-shift pre-activations and their
// gradients are columns of packed rows, as the cuda backend keeps its skinny projections (QkvShape::pre_ld).
#ifdef GFWA_WITH_CUDA
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/qk_norm_rope.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm_cpu.h"
#include "kernels/rope_cpu.h"
#include "kernels/token_shift_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;
using Vec = std::vector<double>;

struct Case {
  int B, T, H, D, C;  // C: width of the token-shift gate input x
  bool shift;
  int kv = 0;  // K/V heads; 0: H
};

class QkNormRopeCuda : public ::testing::TestWithParam<Case> {};

TEST_P(QkNormRopeCuda, ForwardBackwardMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  const Case cs = GetParam();
  const int B = cs.B, T = cs.T, H = cs.H, Hkv = cs.kv > 0 ? cs.kv : H, D = cs.D, C = cs.C, N = B * T;
  const int d = H * D, kd = Hkv * D, ld = d + 2 * kd;  // q | k | v rows
  const double eps = 1e-6, theta = 10000.0;
  const uint64_t seed = 81 + N + d + cs.shift + 7 * cs.kv;
  const auto qkv = random_bf16_values(size_t(N) * ld, seed, 1.3);
  const auto x = random_bf16_values(size_t(N) * C, seed + 1);
  const auto wsk = random_bf16_values(size_t(Hkv) * C, seed + 2, 0.3);
  const auto wsv = random_bf16_values(size_t(Hkv) * C, seed + 3, 0.3);
  const auto wq = random_bf16_values(size_t(d), seed + 4, 0.2, 1.0);
  const auto wk = random_bf16_values(size_t(kd), seed + 5, 0.2, 1.0);
  const auto dout = random_bf16_values(size_t(N) * ld, seed + 6);

  // CPU reference in double on separate [N, d] and [N, kd] tensors.
  Vec q(size_t(N) * d), k(size_t(N) * kd), v(k.size()), dqr(q.size()), dkr(k.size()), dvs(k.size());
  for (int n = 0; n < N; ++n) {
    for (int c = 0; c < d; ++c) {
      q[size_t(n) * d + c] = qkv[size_t(n) * ld + c];
      dqr[size_t(n) * d + c] = dout[size_t(n) * ld + c];
    }
    for (int c = 0; c < kd; ++c) {
      const size_t i = size_t(n) * kd + c, j = size_t(n) * ld + d + c;
      k[i] = qkv[j], v[i] = qkv[j + kd];
      dkr[i] = dout[j], dvs[i] = dout[j + kd];
    }
  }
  const Vec xd(x.begin(), x.end()), wskd(wsk.begin(), wsk.end()), wsvd(wsv.begin(), wsv.end());
  const Vec wqd(wq.begin(), wq.end()), wkd(wk.begin(), wk.end());
  Vec ks = k, vs = v, ak(size_t(N) * Hkv), av(size_t(N) * Hkv);
  if (cs.shift) {
    cpu::token_shift_forward(ks.data(), ak.data(), k.data(), xd.data(), wskd.data(), B, T, Hkv, D, C);
    cpu::token_shift_forward(vs.data(), av.data(), v.data(), xd.data(), wsvd.data(), B, T, Hkv, D, C);
  }
  Vec qn(q.size()), kn(k.size()), rq(N), rk(N), qr(q.size()), kr(k.size());
  cpu::rmsnorm_forward(qn.data(), rq.data(), q.data(), wqd.data(), N, d, eps);
  cpu::rmsnorm_forward(kn.data(), rk.data(), ks.data(), wkd.data(), N, kd, eps);
  cpu::rope_forward(qr.data(), qn.data(), B, T, H, D, theta);
  cpu::rope_forward(kr.data(), kn.data(), B, T, Hkv, D, theta);
  Vec dqn(q.size()), dkn(k.size()), dq(q.size(), 0.0), dks(k.size(), 0.0), dw(size_t(d + kd), 0.0);
  cpu::rope_backward(dqn.data(), dqr.data(), B, T, H, D, theta);
  cpu::rope_backward(dkn.data(), dkr.data(), B, T, Hkv, D, theta);
  cpu::rmsnorm_backward(dq.data(), dw.data(), dqn.data(), q.data(), wqd.data(), rq.data(), N, d);
  cpu::rmsnorm_backward(dks.data(), dw.data() + d, dkn.data(), ks.data(), wkd.data(), rk.data(), N, kd);
  Vec dk = dks, dv = dvs, dx(size_t(N) * C, 0.0), dwsk(size_t(Hkv) * C, 0.0), dwsv(size_t(Hkv) * C, 0.0);
  if (cs.shift) {
    std::fill(dk.begin(), dk.end(), 0.0);
    std::fill(dv.begin(), dv.end(), 0.0);
    cpu::token_shift_backward(dk.data(), dx.data(), dwsk.data(), dks.data(), ak.data(), k.data(), xd.data(),
                              wskd.data(), B, T, Hkv, D, C);
    cpu::token_shift_backward(dv.data(), dx.data(), dwsv.data(), dvs.data(), av.data(), v.data(), xd.data(),
                              wsvd.data(), B, T, Hkv, D, C);
  }

  // GPU.
  std::vector<float> prek(size_t(N) * Hkv), prev(size_t(N) * Hkv);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < Hkv; ++h) {
      double sk = 0, sv = 0;
      for (int c = 0; c < C; ++c) {
        sk += double(x[size_t(n) * C + c]) * wsk[size_t(h) * C + c];
        sv += double(x[size_t(n) * C + c]) * wsv[size_t(h) * C + c];
      }
      prek[size_t(n) * Hkv + h] = float(sk);
      prev[size_t(n) * Hkv + h] = float(sv);
    }
  // k's at columns 1.., v's at Hkv + 1.. of rows of 2 Hkv + 3 (the other columns NaN: never read).
  const int pld = 2 * Hkv + 3, kcol = 1, vcol = Hkv + 1;
  std::vector<float> pre_rows(size_t(N) * pld, std::nanf(""));
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < Hkv; ++h) {
      pre_rows[size_t(n) * pld + kcol + h] = prek[size_t(n) * Hkv + h];
      pre_rows[size_t(n) * pld + vcol + h] = prev[size_t(n) * Hkv + h];
    }
  const cuda::QkvShape sh{B, T, H, D, float(eps), Hkv, pld};
  DeviceArray<bf16> dqkv(to_bf16(qkv)), out(qkv.size()), dwq(to_bf16(wq)), dwk(to_bf16(wk)), dgrad(to_bf16(dout));
  DeviceArray<bf16> draw(qkv.size()), dpre_rows(pre_rows.size());
  DeviceArray<float> dpre(pre_rows), rstdq(N), rstdk(N), partial(size_t(cuda::partial_blocks(N)) * (d + kd)),
      dwout(size_t(d + kd));
  DeviceArray<float> rope(cuda::rope_table(T, D, float(theta)));
  for (auto* a : {&out, &draw, &dpre_rows}) a->poison();
  for (auto* a : {&rstdq, &rstdk, &partial, &dwout}) a->poison();
  const auto* rp = reinterpret_cast<const float2*>(rope.get());
  float* pk = cs.shift ? dpre.get() + kcol : nullptr;
  float* pv = cs.shift ? dpre.get() + vcol : nullptr;
  cuda::qk_norm_rope_forward(nullptr, sh, dqkv.get(), pk, pv, dwq.get(), dwk.get(), rp, out.get(), rstdq.get(),
                             rstdk.get());
  const auto o = out.download();
  // The parts of [N, ld] rows as dense [N, d] (q) and [N, kd] (k, v) vectors.
  auto split = [&](const std::vector<bf16>& rows, Vec& a, Vec& b, Vec& c) {
    for (int n = 0; n < N; ++n) {
      for (int ch = 0; ch < d; ++ch) a[size_t(n) * d + ch] = from_bf16(rows[size_t(n) * ld + ch]);
      for (int ch = 0; ch < kd; ++ch) {
        b[size_t(n) * kd + ch] = from_bf16(rows[size_t(n) * ld + d + ch]);
        c[size_t(n) * kd + ch] = from_bf16(rows[size_t(n) * ld + d + kd + ch]);
      }
    }
  };
  Vec oq(q.size()), ok(k.size()), ov(k.size());
  split(o, oq, ok, ov);
  EXPECT_LT(rel_err(oq, qr), 4e-3);
  EXPECT_LT(rel_err(ok, kr), 4e-3);
  if (cs.shift) {
    EXPECT_LT(rel_err(ov, vs), 4e-3);
  }
  EXPECT_LT(rel_err(rstdq.download(), rq), 1e-5);
  EXPECT_LT(rel_err(rstdk.download(), rk), 1e-5);

  // Backward: dq to a separate buffer with shift (as the backend does), in place without.
  bf16* dq_dst = cs.shift ? draw.get() : dgrad.get();
  cuda::qk_norm_rope_backward(nullptr, sh, dgrad.get(), dqkv.get(), pk, dwq.get(), dwk.get(), rp, rstdq.get(),
                              rstdk.get(), dq_dst, dgrad.get() + d, partial.get());
  cuda::finish_partials(nullptr, partial.get(), cuda::partial_blocks(N), d + kd, dwout.get(), false);
  EXPECT_LT(rel_err(dwout.download(), dw), 1e-4);
  const bf16* res = dgrad.get();
  if (cs.shift) {
    cuda::token_shift_backward(nullptr, sh, dqkv.get(), pk, pv, dgrad.get() + d, draw.get() + d,
                               dpre_rows.get() + kcol, dpre_rows.get() + vcol);
    res = draw.get();
  }
  std::vector<bf16> g(qkv.size());
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(g.data(), res, g.size() * sizeof(bf16), cudaMemcpyDeviceToHost));
  Vec gq(q.size()), gk(k.size()), gv(k.size());
  split(g, gq, gk, gv);
  EXPECT_LT(rel_err(gq, dq), 6e-3);
  EXPECT_LT(rel_err(gk, dk), 6e-3);
  if (!cs.shift) return;
  EXPECT_LT(rel_err(gv, dv), 6e-3);
  // The pre-activation gradients, pushed through x . ws as the backend's GEMMs do.
  const auto gp = to_double(dpre_rows.download());
  Vec gpk(size_t(N) * Hkv), gpv(size_t(N) * Hkv);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < Hkv; ++h) {
      gpk[size_t(n) * Hkv + h] = gp[size_t(n) * pld + kcol + h];
      gpv[size_t(n) * Hkv + h] = gp[size_t(n) * pld + vcol + h];
    }
  Vec gdx(size_t(N) * C, 0.0), gwsk(size_t(Hkv) * C, 0.0), gwsv(size_t(Hkv) * C, 0.0);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < Hkv; ++h)
      for (int c = 0; c < C; ++c) {
        const double xv = x[size_t(n) * C + c], pk = gpk[size_t(n) * Hkv + h], pv = gpv[size_t(n) * Hkv + h];
        gwsk[size_t(h) * C + c] += pk * xv;
        gwsv[size_t(h) * C + c] += pv * xv;
        gdx[size_t(n) * C + c] += pk * wsk[size_t(h) * C + c] + pv * wsv[size_t(h) * C + c];
      }
  // Looser: at t = 0 the k-gate gradient is g . k_s / a, nearly cancelling (see the cases below).
  EXPECT_LT(rel_err(gwsk, dwsk), 1.5e-2);
  EXPECT_LT(rel_err(gwsv, dwsv), 1.5e-2);
  EXPECT_LT(rel_err(gdx, dx), 1.5e-2);
}

// With shift at T = 1 the shift-gate gradient is g . k_s / a with g nearly orthogonal to k_s (the
// QK-norm Jacobian), pure cancellation: the smallest shift case uses T = 2 instead. D % 16 == 0 takes the
// group kernels (a thread per 16-channel rotation group of q and k: 96 threads at d 768, 256 at d 2048, 512 at
// d 4096), the others the generic ones. The presets' widths (768, 1024, 1280, 2048 at head dims 64 and 128) and
// the largest d; the Long cases have more tokens than blocks (backward: 512; forward: one per resident slot,
// ~900 at 96 threads on an H200), so a block walks several tokens: the next token's loads in flight, the two
// shared slots taking turns.
INSTANTIATE_TEST_SUITE_P(Shapes, QkNormRopeCuda,
                         ::testing::Values(Case{2, 7, 3, 10, 13, true}, Case{3, 65, 4, 64, 40, true},
                                           Case{2, 33, 2, 128, 8, false}, Case{1, 1, 1, 2, 3, false},
                                           Case{2, 2, 1, 2, 3, true}, Case{2, 17, 12, 64, 24, true},
                                           Case{2, 9, 16, 64, 8, false}, Case{1, 5, 8, 128, 8, true},
                                           Case{2, 9, 20, 64, 8, true}, Case{2, 9, 16, 128, 8, false},
                                           Case{1, 6, 16, 128, 8, true}, Case{1, 3, 32, 128, 8, false}));
INSTANTIATE_TEST_SUITE_P(Long, QkNormRopeCuda,
                         ::testing::Values(Case{4, 300, 12, 64, 8, true}, Case{2, 2048, 12, 64, 8, false},
                                           Case{3, 700, 4, 64, 8, false},
                                           Case{2, 600, 8, 128, 8, true, 2}, Case{1, 1500, 3, 10, 5, true}));
// Grouped-query attention: k and v narrower than q, through the group kernels (D % 16 == 0) and the generic ones.
INSTANTIATE_TEST_SUITE_P(GroupedQuery, QkNormRopeCuda,
                         ::testing::Values(Case{3, 65, 4, 64, 40, true, 1}, Case{2, 17, 12, 64, 24, true, 4},
                                           Case{2, 33, 4, 128, 8, false, 2}, Case{2, 7, 6, 10, 13, true, 3},
                                           Case{2, 9, 4, 10, 5, false, 1}));

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
