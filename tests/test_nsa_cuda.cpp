// CUDA NSA core (kernels/nsa.h) against its CPU twin (nsa_cpu.h) run in double on the same bf16-rounded
// inputs, stage by stage: each stage's reference is fed the GPU's own inputs to that stage (block means,
// lse, selected blocks, branch outputs), so an error points at one kernel. Every output, the saved tensors
// and the workspace are poisoned (NaN, idx -1) before each run and must come back finite and complete.
//
// Bounds (relative L2 against the double reference; bf16 rounding of an output is ~1e-3 rms):
//   k_cmp, v_cmp 4e-3: the fp32 mean rounded to bf16.
//   o_cmp, o_sel, o_win, o 1e-2 and lse 1e-4: as the attention kernels (test_attention_cuda.cpp).
//   idx: exact structure (ascending, the own block last, min(top_k, own + 1) entries, then -1), and the
//       chosen blocks' importance equal to the best possible within 1e-4 * G (fp32 sums of exp2 of fp32
//       scores, against double: ~1e-6 relative; a wrong pick among random blocks costs ~1e-2 or more).
//   dq, dk 3e-2, dv 2e-2: the attention bounds plus each branch's dO = g * dout rounded to bf16 (~1e-3).
//   dlam 5e-3 (+1e-5 absolute): attention's 1e-3 plus the same rounding of dO_win.
//   dg 1e-4: fp32 dot products of the same bf16 values.
// The backward is fed the GPU forward's saved tensors, and so is the reference backward.
#ifdef GFWA_WITH_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/attention_cpu.h"
#include "kernels/nsa.h"
#include "kernels/nsa_cpu.h"
#include "kernels/nsa_gates.cuh"
#include "kernels/nsa_gates_cpu.h"

using namespace gfwa;
using gfwa::test::DeviceBuffer;

namespace {

using bf16 = __nv_bfloat16;

struct Case {
  int B, T, Hkv, G, D, top_k, W;
  AttnMode mode;
  double gate;      // log-gates uniform in [-gate, 0]
  double qk_scale;  // q and k drawn N(0, qk_scale^2): large makes the softmaxes sharp
  bool sink;        // every query leans towards block 0's keys: one block picked by (nearly) every token
  bool strided;     // q|k|v and dq|dk|dv as views of fused rows, o and dout with padded rows
  bool small_split; // the backward's work split small enough that chunks and items are many
  uint64_t seed;
};

std::string name(const Case& c) {
  return std::string(attn_mode_name(c.mode)) + "_B" + std::to_string(c.B) + "_T" + std::to_string(c.T) + "_Hkv" +
         std::to_string(c.Hkv) + "_G" + std::to_string(c.G) + "_D" + std::to_string(c.D) + "_k" +
         std::to_string(c.top_k) + "_W" + std::to_string(c.W) + (c.qk_scale > 1 ? "_sharp" : "") +
         (c.sink ? "_sink" : "") + (c.strided ? "_strided" : "") + (c.small_split ? "_split" : "");
}

double bf16_round(double x) { return double(__bfloat162float(__float2bfloat16(float(x)))); }

std::vector<double> bf16_randn(size_t n, std::mt19937_64& rng, double sd) {
  std::normal_distribution<double> nd(0.0, sd);
  std::vector<double> x(n);
  for (auto& v : x) v = bf16_round(nd(rng));
  return x;
}

// A [B, T, heads, D] view with row stride `stride` at column offset `off` of a bf16 buffer.
struct View {
  int heads;
  int64_t stride, off;
};
void scatter(const Case& c, const std::vector<double>& x, View v, std::vector<bf16>& buf) {
  size_t i = 0;
  for (int64_t bt = 0; bt < int64_t(c.B) * c.T; ++bt)
    for (int e = 0; e < v.heads * c.D; ++e) buf[size_t(bt * v.stride + v.off + e)] = __float2bfloat16(float(x[i++]));
}
std::vector<double> gather(const Case& c, const std::vector<bf16>& buf, View v) {
  std::vector<double> x;
  for (int64_t bt = 0; bt < int64_t(c.B) * c.T; ++bt)
    for (int e = 0; e < v.heads * c.D; ++e) x.push_back(double(__bfloat162float(buf[size_t(bt * v.stride + v.off + e)])));
  return x;
}

template <class T>
std::vector<T> download(const T* p, size_t n) {
  std::vector<T> h(n);
  if (n) CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
std::vector<double> to_double(const std::vector<bf16>& x) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = double(__bfloat162float(x[i]));
  return y;
}
std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// The saved tensors of the GPU forward, as the CPU twin's NsaSaved.
cpu::NsaSaved<double> saved_from_device(const NsaShape& s, const cuda::NsaSaved& d) {
  const size_t cmp = size_t(s.B) * s.n_cmp() * s.Hkv * s.D, rows = size_t(s.B) * s.T * s.H;
  cpu::NsaSaved<double> h;
  h.k_cmp = to_double(download(d.k_cmp, cmp));
  h.v_cmp = to_double(download(d.v_cmp, cmp));
  h.o_cmp = to_double(download(d.o_cmp, rows * s.D));
  h.o_sel = to_double(download(d.o_sel, rows * s.D));
  h.o_win = to_double(download(d.o_win, rows * s.D));
  h.lse_cmp = to_double(download(d.lse_cmp, rows));
  h.lse_sel = to_double(download(d.lse_sel, rows));
  h.lse_win = to_double(download(d.lse_win, rows));
  h.idx = download(d.idx, size_t(s.B) * s.T * s.Hkv * s.top_k);
  return h;
}

// Structure of every idx row, and its picks' importance against the best possible (the CPU twin's
// importance on the GPU's block means and lse). Returns the fraction of rows identical to the CPU's picks.
double check_selection(const NsaShape& s, const std::vector<double>& q, const cpu::NsaSaved<double>& g) {
  std::vector<int32_t> ref(g.idx.size());
  cpu::nsa_select(s, q.data(), g.k_cmp.data(), g.lse_cmp.data(), ref.data());
  std::vector<double> imp;
  size_t same = 0, rows = 0, bad = 0;
  for (int b = 0; b < s.B; ++b)
    for (int t = 0; t < s.T; ++t)
      for (int hk = 0; hk < s.Hkv; ++hk, ++rows) {
        const size_t o = ((size_t(b) * s.T + t) * s.Hkv + hk) * s.top_k;
        const int32_t* row = &g.idx[o];
        const int own = t / s.block, n = std::min(s.top_k, own + 1);
        bool ok = row[n - 1] == own;
        for (int i = 0; i < s.top_k; ++i) ok &= i < n ? (row[i] >= 0 && (i == 0 || row[i - 1] < row[i])) : row[i] == -1;
        if (!ok) {
          if (++bad <= 5) ADD_FAILURE() << "idx row b=" << b << " t=" << t << " hk=" << hk << " malformed";
          continue;
        }
        same += std::equal(row, row + s.top_k, &ref[o]);
        cpu::nsa_block_importance(s, q.data(), g.k_cmp.data(), g.lse_cmp.data(), b, t, hk, imp);
        std::vector<double> got, best;
        for (int i = 0; i + 1 < n; ++i) {
          got.push_back(imp[row[i]]);
          best.push_back(imp[ref[o + i]]);
        }
        std::sort(got.rbegin(), got.rend());
        std::sort(best.rbegin(), best.rend());
        for (size_t i = 0; i < got.size(); ++i)
          if (std::fabs(got[i] - best[i]) > 1e-4 * s.groups() && ++bad <= 5)
            ADD_FAILURE() << "t=" << t << " hk=" << hk << ": pick " << i << " has importance " << got[i]
                          << ", the best possible " << best[i];
      }
  EXPECT_EQ(bad, 0u);
  return double(same) / double(rows);
}

void run_case(const Case& c) {
  SCOPED_TRACE(name(c));
  const int H = c.Hkv * c.G;
  const NsaShape s{c.B, c.T, H, c.Hkv, c.D, kNsaBlock, c.top_k, c.W};
  std::mt19937_64 rng(c.seed);
  const size_t nq = size_t(c.B) * c.T * H * c.D, nkv = size_t(c.B) * c.T * c.Hkv * c.D, nt = size_t(c.B) * c.T * H;
  std::vector<double> q = bf16_randn(nq, rng, c.qk_scale), k = bf16_randn(nkv, rng, c.qk_scale),
                      v = bf16_randn(nkv, rng, 1.0), dout = bf16_randn(nq, rng, 1.0);
  if (c.sink) {  // a direction u: block 0's keys and every query lean along it
    const std::vector<double> u = bf16_randn(size_t(c.D), rng, 1.0);
    for (size_t i = 0; i < nq; ++i) q[i] = bf16_round(q[i] + 0.4 * u[i % c.D]);
    for (int b = 0; b < c.B; ++b)
      for (int t = 0; t < std::min(c.T, 64); ++t)
        for (int e = 0; e < c.Hkv * c.D; ++e) {
          double& x = k[(size_t(b) * c.T + t) * c.Hkv * c.D + e];
          x = bf16_round(x + 0.8 * u[e % c.D]);
        }
  }
  std::vector<float> lam(nt), gc(nt), gs(nt), gw(nt);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < H; ++h) {
      double run = 0;
      for (int t = 0; t < c.T; ++t) lam[(size_t(b) * c.T + t) * H + h] = float(run -= c.gate * u01(rng));
    }
  for (auto* g : {&gc, &gs, &gw})
    for (auto& e : *g) e = float(u01(rng));

  // Device layout.
  const int HD = H * c.D, KD = c.Hkv * c.D;
  const int64_t in_stride = c.strided ? HD + 2 * KD : 0;
  const View vq{H, c.strided ? in_stride : HD, 0}, vk{c.Hkv, c.strided ? in_stride : KD, c.strided ? HD : 0},
      vv{c.Hkv, c.strided ? in_stride : KD, c.strided ? HD + KD : 0}, vo{H, c.strided ? HD + 8 : HD, 0},
      vdo{H, c.strided ? HD + 16 : HD, 0};
  const size_t BT = size_t(c.B) * c.T;
  const size_t q_elems = BT * vq.stride, kv_elems = c.strided ? 0 : BT * vk.stride;
  std::vector<bf16> hq(q_elems), hk(kv_elems), hv(kv_elems), hdo(BT * vdo.stride);
  scatter(c, q, vq, hq);
  scatter(c, k, vk, c.strided ? hq : hk);
  scatter(c, v, vv, c.strided ? hq : hv);
  scatter(c, dout, vdo, hdo);
  DeviceBuffer<bf16> d_q(q_elems), d_k(std::max<size_t>(kv_elems, 1)), d_v(std::max<size_t>(kv_elems, 1)),
      d_do(hdo.size()), d_o(BT * vo.stride), d_g(q_elems), d_gk(std::max<size_t>(kv_elems, 1)),
      d_gv(std::max<size_t>(kv_elems, 1));
  d_q.upload(hq);
  if (!c.strided) {
    d_k.upload(hk);
    d_v.upload(hv);
  }
  d_do.upload(hdo);
  DeviceBuffer<float> d_lam(nt), d_gc(nt), d_gs(nt), d_gw(nt), d_dlam(nt), d_dgc(nt), d_dgs(nt), d_dgw(nt);
  d_lam.upload(lam);
  d_gc.upload(gc);
  d_gs.upload(gs);
  d_gw.upload(gw);
  NsaSplit split;
  if (c.small_split) split = NsaSplit{128, 64};
  DeviceBuffer<char> d_saved(nsa_saved_bytes(s)), d_ws(nsa_bwd_workspace_bytes(s, split));

  cuda::NsaParams p{};
  p.s = s;
  p.sliding = c.mode;
  p.q = d_q.get();
  p.k = c.strided ? d_q.get() + vk.off : d_k.get();
  p.v = c.strided ? d_q.get() + vv.off : d_v.get();
  p.q_row_stride = vq.stride;
  p.k_row_stride = vk.stride;
  p.v_row_stride = vv.stride;
  p.lam = c.mode == AttnMode::gatedfwa ? d_lam.get() : nullptr;
  p.g_cmp = d_gc.get();
  p.g_sel = d_gs.get();
  p.g_win = d_gw.get();
  p.o = d_o.get();
  p.o_row_stride = vo.stride;
  p.saved = cuda::nsa_saved_layout(s, d_saved.get());

  auto run_fwd = [&] {
    d_o.poison();
    d_saved.poison();
    cuda::nsa_forward(p, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
  };
  run_fwd();
  const std::vector<bf16> ho = d_o.download();
  const std::vector<double> o_gpu = gather(c, ho, vo);
  const cpu::NsaSaved<double> g = saved_from_device(s, p.saved);
  if (c.strided)  // the padding of o's rows is untouched (still the poison pattern)
    for (size_t r = 0; r < BT; ++r)
      for (int64_t e = HD; e < vo.stride; ++e) {
        uint16_t bits;
        std::memcpy(&bits, &ho[size_t(r * vo.stride + e)], 2);
        ASSERT_EQ(bits, 0xFFFF) << "o padding written at row " << r;
      }

  // Stage by stage.
  const std::vector<double> gcd = to_double(gc), gsd = to_double(gs), gwd = to_double(gw), lamd = to_double(lam);
  const size_t ncmp = g.k_cmp.size();
  std::vector<double> kc_ref(ncmp), vc_ref(ncmp);
  cpu::nsa_pool(s, k.data(), kc_ref.data());
  cpu::nsa_pool(s, v.data(), vc_ref.data());
  std::vector<double> o_cmp(nq), lse_cmp(nt), o_sel(nq), lse_sel(nt), o_win(nq), lse_win(nt);
  cpu::nsa_compressed_forward(s, q.data(), g.k_cmp.data(), g.v_cmp.data(), o_cmp.data(), lse_cmp.data());
  const double same = check_selection(s, q, g);
  cpu::nsa_selected_forward(s, q.data(), k.data(), v.data(), g.idx.data(), o_sel.data(), lse_sel.data());
  cpu::NsaSaved<double> ref_saved;
  ref_saved.idx = g.idx;
  std::vector<double> o_ref(nq);
  const cpu::NsaInputs<double> in{q.data(), k.data(), v.data(), c.mode == AttnMode::gatedfwa ? lamd.data() : nullptr,
                                  gcd.data(), gsd.data(), gwd.data()};
  cpu::nsa_forward_blocks(s, c.mode, in, o_ref.data(), &ref_saved);
  std::vector<double> o_mix(nq);
  for (size_t e = 0; e < nq; ++e) {
    const size_t r = e / c.D;
    o_mix[e] = gcd[r] * g.o_cmp[e] + gsd[r] * g.o_sel[e] + gwd[r] * g.o_win[e];
  }
  if (ncmp) {
    EXPECT_LT(test::rel_l2(g.k_cmp, kc_ref), 4e-3);
    EXPECT_LT(test::rel_l2(g.v_cmp, vc_ref), 4e-3);
  }
  EXPECT_TRUE(test::close_l2(g.o_cmp, o_cmp, 1e-2, 1e-6)) << "o_cmp " << test::rel_l2(g.o_cmp, o_cmp);
  EXPECT_TRUE(test::close_l2(g.lse_cmp, lse_cmp, 1e-4, 1e-6)) << "lse_cmp " << test::rel_l2(g.lse_cmp, lse_cmp);
  EXPECT_LT(test::rel_l2(g.o_sel, o_sel), 1e-2);
  EXPECT_LT(test::rel_l2(g.lse_sel, lse_sel), 1e-4);
  EXPECT_LT(test::rel_l2(g.o_win, ref_saved.o_win), 1e-2);
  EXPECT_LT(test::rel_l2(g.lse_win, ref_saved.lse_win), 1e-4);
  EXPECT_LT(test::rel_l2(o_gpu, o_mix), 4e-3);
  EXPECT_LT(test::rel_l2(o_gpu, o_ref), 1e-2);

  // Backward.
  cuda::NsaBwdParams bp{};
  static_cast<cuda::NsaParams&>(bp) = p;
  bp.dout = d_do.get();
  bp.dout_row_stride = vdo.stride;
  bp.dq = d_g.get();
  bp.dk = c.strided ? d_g.get() + vk.off : d_gk.get();
  bp.dv = c.strided ? d_g.get() + vv.off : d_gv.get();
  bp.dq_row_stride = vq.stride;
  bp.dk_row_stride = vk.stride;
  bp.dv_row_stride = vv.stride;
  bp.dlam = c.mode == AttnMode::gatedfwa ? d_dlam.get() : nullptr;
  bp.dg_cmp = d_dgc.get();
  bp.dg_sel = d_dgs.get();
  bp.dg_win = d_dgw.get();
  bp.split = split;
  bp.workspace = d_ws.get();
  auto run_bwd = [&] {
    for (auto* d : {&d_g, &d_gk, &d_gv}) d->poison();
    for (auto* d : {&d_dlam, &d_dgc, &d_dgs, &d_dgw}) d->poison();
    d_ws.poison();
    cuda::nsa_backward(bp, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
  };
  run_bwd();
  const std::vector<bf16> g1 = d_g.download(), gk1 = d_gk.download(), gv1 = d_gv.download();
  const std::vector<float> dl1 = d_dlam.download(), dgc1 = d_dgc.download(), dgs1 = d_dgs.download(),
                           dgw1 = d_dgw.download();

  std::vector<double> dq(nq), dk(nkv), dv(nkv), dlam(nt), dgc(nt), dgs(nt), dgw(nt);
  cpu::nsa_backward(s, c.mode, in, g, dout.data(),
                    cpu::NsaGrads<double>{dq.data(), dk.data(), dv.data(), dlam.data(), dgc.data(), dgs.data(), dgw.data()});
  const std::vector<double> dq_gpu = gather(c, g1, vq), dk_gpu = gather(c, c.strided ? g1 : gk1, vk),
                            dv_gpu = gather(c, c.strided ? g1 : gv1, vv);
  EXPECT_TRUE(test::close_l2(dq_gpu, dq, 3e-2, 1e-4)) << "dq " << test::rel_l2(dq_gpu, dq);
  EXPECT_TRUE(test::close_l2(dk_gpu, dk, 3e-2, 1e-4)) << "dk " << test::rel_l2(dk_gpu, dk);
  EXPECT_TRUE(test::close_l2(dv_gpu, dv, 2e-2, 1e-4)) << "dv " << test::rel_l2(dv_gpu, dv);
  EXPECT_TRUE(test::close_l2(to_double(dgc1), dgc, 1e-4, 1e-6)) << "dg_cmp " << test::rel_l2(to_double(dgc1), dgc);
  EXPECT_TRUE(test::close_l2(to_double(dgs1), dgs, 1e-4, 1e-6)) << "dg_sel " << test::rel_l2(to_double(dgs1), dgs);
  EXPECT_TRUE(test::close_l2(to_double(dgw1), dgw, 1e-4, 1e-6)) << "dg_win " << test::rel_l2(to_double(dgw1), dgw);
  double e_dlam = 0;
  if (c.mode == AttnMode::gatedfwa) {
    e_dlam = test::rel_l2(to_double(dl1), dlam);
    EXPECT_TRUE(test::close_l2(to_double(dl1), dlam, 5e-3, 1e-5)) << "dlam " << e_dlam;
  }
  std::printf("  %-52s same picks %.3f  o %.1e o_cmp %.1e o_sel %.1e dq %.1e dk %.1e dv %.1e dlam %.1e\n",
              name(c).c_str(), same, test::rel_l2(o_gpu, o_ref), test::rel_l2(g.o_cmp, o_cmp),
              test::rel_l2(g.o_sel, o_sel), test::rel_l2(dq_gpu, dq), test::rel_l2(dk_gpu, dk),
              test::rel_l2(dv_gpu, dv), e_dlam);

  // Determinism: the same bits again, forward and backward.
  run_fwd();
  EXPECT_EQ(0, std::memcmp(ho.data(), d_o.download().data(), ho.size() * sizeof(bf16)));
  EXPECT_EQ(g.idx, download(p.saved.idx, g.idx.size()));
  run_bwd();
  EXPECT_EQ(0, std::memcmp(g1.data(), d_g.download().data(), g1.size() * sizeof(bf16)));
  EXPECT_EQ(0, std::memcmp(gk1.data(), d_gk.download().data(), gk1.size() * sizeof(bf16)));
  EXPECT_EQ(0, std::memcmp(gv1.data(), d_gv.download().data(), gv1.size() * sizeof(bf16)));
  EXPECT_EQ(0, std::memcmp(dl1.data(), d_dlam.download().data(), nt * sizeof(float)));
}

class NsaCuda : public ::testing::TestWithParam<Case> {};
TEST_P(NsaCuda, MatchesCpuReference) {
  GFWA_SKIP_WITHOUT_GPU();
  run_case(GetParam());
}

const AttnMode kSwa = AttnMode::swa, kGated = AttnMode::gatedfwa;

// T never a multiple of the block; groups of 1, 3, 4, 16 (one m-tile of heads), 32 (two) and 72 (top-k in
// passes of 64 heads); top_k below and above the number of blocks; W = 1 and W > T.
INSTANTIATE_TEST_SUITE_P(
    Shapes, NsaCuda,
    ::testing::Values(Case{2, 333, 2, 4, 64, 3, 100, kGated, 0.7, 1.0, false, false, false, 1},
                      Case{1, 333, 1, 16, 128, 4, 64, kSwa, 0.0, 1.0, false, true, false, 2},
                      Case{1, 200, 2, 1, 64, 2, 1, kGated, 0.7, 1.0, false, false, false, 3},
                      Case{1, 519, 1, 32, 64, 16, 130, kGated, 0.7, 1.0, false, true, false, 4},
                      Case{2, 47, 1, 16, 128, 16, 20, kGated, 0.7, 1.0, false, false, false, 5},
                      // T = 1: one key per branch, dq and dk exactly 0, so any inconsistency between a
                      // branch's dP and its delta (e.g. delta from the unrounded g * dout) shows whole.
                      Case{1, 1, 2, 3, 64, 1, 5, kSwa, 0.0, 1.0, false, false, false, 6},
                      Case{1, 260, 1, 72, 64, 3, 50, kSwa, 0.0, 1.0, false, false, false, 7},
                      Case{1, 700, 2, 8, 128, 5, 1000, kGated, 0.7, 1.0, false, false, true, 8}),
    [](const auto& info) { return name(info.param); });

// Extreme values: sharp softmaxes (q, k ~ N(0, 6^2)) with strong gates (bias -3 per token); an attention sink
// that nearly every token selects, with the work split small so that the sink's tokens span many items and
// the compressed dK/dV many chunks; a long sequence.
INSTANTIATE_TEST_SUITE_P(
    Extremes, NsaCuda,
    ::testing::Values(Case{1, 400, 1, 16, 64, 4, 128, kGated, 3.0, 6.0, false, false, false, 20},
                      Case{1, 1500, 2, 4, 64, 3, 64, kGated, 0.7, 1.0, true, true, true, 21},
                      Case{1, 2085, 1, 16, 64, 4, 256, kGated, 0.7, 1.0, true, false, false, 22}),
    [](const auto& info) { return name(info.param); });

// The branch gates of an nsa layer (nsa_gates.cuh) against their CPU twin: the sigmoids in fp32 (__expf:
// a few ulps), the pre-activations' gradient rounded to bf16 (2^-8 relative), on an odd N * H.
TEST(NsaGatesCuda, MatchesCpuTwin) {
  GFWA_SKIP_WITHOUT_GPU();
  const int N = 301, H = 5;
  const size_t n = size_t(3) * N * H;
  std::mt19937_64 rng(77);
  std::normal_distribution<float> z(0.f, 3.f);
  std::vector<float> pre(n), dg(n);
  for (size_t i = 0; i < n; ++i) {
    pre[i] = z(rng);
    dg[i] = z(rng);
  }
  DeviceBuffer<float> d_pre(n), d_g(n), d_dg(n);
  DeviceBuffer<bf16> d_dpre(n);
  d_pre.upload(pre);
  d_dg.upload(dg);
  d_g.poison();
  d_dpre.poison();
  cuda::nsa_gates_forward(nullptr, d_pre.get(), N, H, d_g.get());
  cuda::nsa_gates_backward(nullptr, d_g.get(), d_dg.get(), N, H, d_dpre.get());
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> g_ref(n), dpre_ref(n);
  cpu::nsa_gates_forward(pre.data(), N, H, g_ref.data());
  const std::vector<float> g = d_g.download();
  for (size_t i = 0; i < n; ++i) ASSERT_NEAR(g[i], g_ref[i], 1e-6f) << i;
  cpu::nsa_gates_backward(g.data(), dg.data(), N, H, dpre_ref.data());  // from the GPU's gates
  const std::vector<bf16> dpre = d_dpre.download();
  for (size_t i = 0; i < n; ++i)
    ASSERT_NEAR(__bfloat162float(dpre[i]), dpre_ref[i], 4e-3f * std::fabs(dpre_ref[i]) + 1e-30f) << i;
}

TEST(NsaCudaApi, RejectsShapesTheKernelsDoNotTake) {
  auto expect_error = [](NsaShape s, const std::string& what) {
    cuda::NsaParams p{};
    p.s = s;
    p.sliding = AttnMode::swa;
    try {
      cuda::nsa_forward(p, nullptr);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error(NsaShape{1, 128, 16, 1, 96, 64, 16, 64}, "D=96");
  expect_error(NsaShape{1, 128, 16, 1, 64, 32, 16, 64}, "block=32");
  expect_error(NsaShape{1, 128, 16, 1, 64, 64, 65, 64}, "top_k=65");
  expect_error(NsaShape{1, 128, 16, 3, 64, 64, 16, 64}, "Hkv=3");
  expect_error(NsaShape{1, 128, 16, 1, 64, 64, 16, 64}, "q is null");
}

}  // namespace
#endif  // GFWA_WITH_CUDA
