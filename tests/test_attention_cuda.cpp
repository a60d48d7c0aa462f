// CUDA attention (forward and backward, all three modes, multi-head and grouped-query) against the CPU
// reference run in double on the same bf16-rounded inputs. Every output is poisoned (NaN) before each
// run and must come back finite; the backward's workspace is poisoned too. Each case runs once per
// path (AttnParams::path): the mma.sync kernels (sm80, any GPU) and the sm_90a kernels (sm90, skipped unless
// the GPU is compute capability 9.0), forward and backward; the backward takes that path's o and lse. On sm90 the
// forward runs its default schedule for the mode and head dim (AttnParams::sm90_schedule auto: names end in _sm90) and,
// forward only (the backward is one kernel), the other one (_sm90_persistent for full attention at D 128,
// _sm90_per_tile otherwise).
//
// Error bounds (relative L2 against the double reference):
//   o   1e-2: o is rounded to bf16 on output (rms relative error ~2^-9/sqrt(3) ~ 1e-3) and P is rounded to
//       bf16 before P.V (another ~1e-3); 1e-2 leaves room for unlucky rows without hiding a wrong tile.
//   lse 1e-4: computed in fp32 only (scores are exact bf16 products summed in fp32, ex2.approx ~2^-22).
//   dv  1e-2: P in bf16 plus output rounding, as for o.
//   dq, dk 2e-2: dS is rounded to bf16 before the matmuls and its rows sum to 0, so the sums cancel and
//       the relative error grows by a small factor over o's.
//   dlam 1e-3 (+1e-5 absolute): fp32 only (dS in fp32, row and column sums in fp32), relative to dlam's own
//       scale; the absolute floor is fp32 rounding of dO.v ~ 1e-6 where the exact value is 0 (W = 1).
//       dlam = rowsum_i dS - colsum_i dS on both sides (docs/gatedfwa.md section 4): a kernel that drops the row
//       sums (0 in exact arithmetic, ~2e-3 relative noise with a bf16-rounded O) fails this bound.
// The backward is fed the GPU forward's o and lse (as in training), and so is the reference backward:
// the comparison isolates the backward.
#ifdef GFWA_WITH_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/attention.h"
#include "kernels/attention_cpu.h"

using namespace gfwa;
using gfwa::test::DeviceBuffer;

namespace {

using bf16 = __nv_bfloat16;
using cuda::AttnPath;

#define GFWA_SKIP_UNLESS_PATH_RUNS(path)                                                     \
  do {                                                                                       \
    GFWA_SKIP_WITHOUT_GPU();                                                                 \
    if ((path) == AttnPath::sm90 && !test::cuda_device_is_sm90())                            \
      GTEST_SKIP() << "the sm90 kernels need a compute capability 9.0 GPU";                  \
  } while (0)

struct Case {
  int B, T, H, D, W;
  AttnMode mode;
  double gate;   // log-gates drawn uniform in [-gate, 0]: 0.02 weak, 3 strong (bias reaches -3 per token)
  bool fused;    // q/k/v and dq/dk/dv as views of fused q | k | v rows; o with a padded row stride
  uint64_t seed;
  int kv = 0;    // K/V heads (grouped-query attention); 0: H
};

int kv_heads(const Case& c) { return c.kv > 0 ? c.kv : c.H; }

std::string name(const Case& c) {
  return std::string(attn_mode_name(c.mode)) + "_B" + std::to_string(c.B) + "_T" + std::to_string(c.T) + "_H" +
         std::to_string(c.H) + "_D" + std::to_string(c.D) + "_W" + std::to_string(c.W) + "_g" +
         std::to_string(int(c.gate * 100)) + (c.fused ? "_fused" : "") + (c.kv > 0 ? "_kv" + std::to_string(c.kv) : "");
}

// A [B,T,heads,D] view inside a host/device buffer with row stride `stride` and column offset `off`.
struct View {
  int64_t stride, off;
  int heads;
  size_t at(const Case& c, int b, int t, int h, int d) const {
    return size_t((int64_t(b) * c.T + t) * stride + off + int64_t(h) * c.D + d);
  }
};

// Scatters a dense [B,T,heads,D] double tensor (values already bf16-exact) into a bf16 buffer view.
void scatter(const Case& c, const std::vector<double>& x, View v, std::vector<bf16>& buf) {
  size_t i = 0;
  for (int b = 0; b < c.B; ++b)
    for (int t = 0; t < c.T; ++t)
      for (int h = 0; h < v.heads; ++h)
        for (int d = 0; d < c.D; ++d) buf[v.at(c, b, t, h, d)] = __float2bfloat16(float(x[i++]));
}
std::vector<double> gather(const Case& c, const std::vector<bf16>& buf, View v) {
  std::vector<double> x;
  x.reserve(size_t(c.B) * c.T * v.heads * c.D);
  for (int b = 0; b < c.B; ++b)
    for (int t = 0; t < c.T; ++t)
      for (int h = 0; h < v.heads; ++h)
        for (int d = 0; d < c.D; ++d) x.push_back(double(__bfloat162float(buf[v.at(c, b, t, h, d)])));
  return x;
}
std::vector<double> bf16_randn(size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<double> x(n);
  for (auto& v : x) v = double(__bfloat162float(__float2bfloat16(nd(rng))));
  return x;
}
std::vector<double> to_double(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

struct Errors {
  double o, lse, dq, dk, dv, dlam;
};

// A run's outputs, gathered dense ([B,T,H,D], [B,H,T], [B,T,Hkv,D], [B,T,H]).
struct RunOut {
  std::vector<double> o, lse, dq, dk, dv, dlam;
};

// The kernels a case runs on: a path and, on sm90, the forward's schedule.
struct Kernels {
  AttnPath path;
  cuda::Sm90FwdSchedule schedule = cuda::Sm90FwdSchedule::automatic;
};
// "sm80", "sm90" (auto), "sm90_per_tile", "sm90_persistent" (test names take no '-').
std::string kernels_name(const Kernels& k) {
  std::string n = cuda::attn_path_name(k.path);
  if (k.schedule != cuda::Sm90FwdSchedule::automatic) n += std::string("_") + cuda::sm90_fwd_schedule_name(k.schedule);
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

// Runs one case end to end on the given kernels (an explicit sm90 schedule: the forward only); asserts the errors and
// returns the outputs.
RunOut run_case(const Case& c, Kernels kernels) {
  const AttnPath path = kernels.path;
  SCOPED_TRACE(name(c) + " " + kernels_name(kernels));
  std::mt19937_64 rng(c.seed);
  const int Hkv = kv_heads(c);
  const size_t n = size_t(c.B) * c.T * c.H * c.D, nkv = size_t(c.B) * c.T * Hkv * c.D, nt = size_t(c.B) * c.T * c.H;
  const int HD = c.H * c.D, KD = Hkv * c.D;
  const std::vector<double> q = bf16_randn(n, rng), k = bf16_randn(nkv, rng), v = bf16_randn(nkv, rng),
                            dout = bf16_randn(n, rng);
  std::vector<float> lam(nt, 0.f);
  std::uniform_real_distribution<double> u(0.0, c.gate);
  for (int b = 0; b < c.B; ++b)
    for (int h = 0; h < c.H; ++h) {
      double run = 0;
      for (int t = 0; t < c.T; ++t) lam[(size_t(b) * c.T + t) * c.H + h] = float(run -= u(rng));
    }

  // Device layout: separate [B,T,H,D] and [B,T,Hkv,D] tensors, or views into fused q | k | v rows.
  const int64_t q_stride = c.fused ? HD + 2 * KD : HD, kv_stride = c.fused ? q_stride : KD;
  const int64_t o_stride = c.fused ? HD + 8 : HD;
  const View vq{q_stride, 0, c.H}, vk{kv_stride, c.fused ? HD : 0, Hkv}, vv{kv_stride, c.fused ? HD + KD : 0, Hkv},
      vo{o_stride, 0, c.H}, vd{HD, 0, c.H};
  const size_t in_elems = size_t(c.B) * c.T * q_stride, kv_elems = size_t(c.B) * c.T * kv_stride;
  const size_t o_elems = size_t(c.B) * c.T * o_stride;
  std::vector<bf16> hq(in_elems), hk(c.fused ? 0 : kv_elems), hv(c.fused ? 0 : kv_elems), hdo(n);
  scatter(c, q, vq, hq);
  scatter(c, k, vk, c.fused ? hq : hk);
  scatter(c, v, vv, c.fused ? hq : hv);
  scatter(c, dout, vd, hdo);
  DeviceBuffer<bf16> dq_in(in_elems), dk_in(c.fused ? 1 : kv_elems), dv_in(c.fused ? 1 : kv_elems), ddo(n);
  dq_in.upload(hq);
  if (!c.fused) {
    dk_in.upload(hk);
    dv_in.upload(hv);
  }
  ddo.upload(hdo);
  DeviceBuffer<float> dlam_in(nt), dlse(size_t(c.B) * c.H * c.T), ddlam(nt);
  dlam_in.upload(lam);
  DeviceBuffer<bf16> d_o(o_elems), dgrad(in_elems), dgk(c.fused ? 1 : kv_elems), dgv(c.fused ? 1 : kv_elems);

  cuda::AttnParams p{};
  p.q = dq_in.get() + vq.off;
  p.k = c.fused ? dq_in.get() + vk.off : dk_in.get();
  p.v = c.fused ? dq_in.get() + vv.off : dv_in.get();
  p.q_row_stride = q_stride;
  p.k_row_stride = p.v_row_stride = kv_stride;
  p.o_row_stride = o_stride;
  p.lam = c.mode == AttnMode::gatedfwa ? dlam_in.get() : nullptr;
  p.o = d_o.get();
  p.lse = dlse.get();
  p.B = c.B;
  p.T = c.T;
  p.H = c.H;
  p.Hkv = Hkv;
  p.D = c.D;
  p.window = c.W;
  p.mode = c.mode;
  p.path = path;
  p.sm90_schedule = kernels.schedule;

  d_o.poison();
  dlse.poison();
  cuda::attention_forward(p, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<bf16> ho = d_o.download();
  const std::vector<double> o_gpu = gather(c, ho, vo), lse_gpu = to_double(dlse.download());
  if (c.fused) {  // the padding between rows of o must be untouched (still the poison pattern)
    int64_t first_written = -1;
    for (int64_t r = 0; r < int64_t(c.B) * c.T && first_written < 0; ++r)
      for (int e = HD; e < o_stride; ++e) {
        uint16_t bits;
        std::memcpy(&bits, &ho[size_t(r * o_stride + e)], 2);
        if (bits != 0xFFFF) first_written = r;
      }
    EXPECT_EQ(first_written, -1) << "o padding written at row " << first_written;
  }

  const cpu::AttnShape shape{c.B, c.T, c.H, c.D, c.W, Hkv};
  const std::vector<double> lamd = to_double(lam);
  std::vector<double> o_ref(n), lse_ref(size_t(c.B) * c.H * c.T);
  cpu::attention_forward(shape, c.mode, q.data(), k.data(), v.data(), lamd.data(), o_ref.data(), lse_ref.data());

  Errors e{};
  e.o = test::rel_l2(o_gpu, o_ref);
  e.lse = test::rel_l2(lse_gpu, lse_ref);
  EXPECT_LT(e.o, 1e-2);  // NaN fails too
  EXPECT_LT(e.lse, 1e-4);
  if (kernels.schedule != cuda::Sm90FwdSchedule::automatic) {
    std::printf("  %-44s %s o %.1e lse %.1e\n", name(c).c_str(), kernels_name(kernels).c_str(), e.o, e.lse);
    return {o_gpu, lse_gpu, {}, {}, {}, {}};
  }

  cuda::AttnBwdParams bp{};
  static_cast<cuda::AttnParams&>(bp) = p;
  bp.dout = ddo.get();
  bp.dout_row_stride = HD;
  bp.dq = dgrad.get() + vq.off;
  bp.dk = c.fused ? dgrad.get() + vk.off : dgk.get();
  bp.dv = c.fused ? dgrad.get() + vv.off : dgv.get();
  bp.dq_row_stride = q_stride;
  bp.dk_row_stride = bp.dv_row_stride = kv_stride;
  bp.dlam = c.mode == AttnMode::gatedfwa ? ddlam.get() : nullptr;
  DeviceBuffer<float> ws((cuda::attention_bwd_workspace_bytes(p) + 3) / 4);
  ws.poison();  // nothing may depend on its contents (sm90: NaN accumulators, every ticket 0xFFFFFFFF)
  bp.workspace = ws.get();

  auto run_bwd = [&] {
    dgrad.poison();
    dgk.poison();
    dgv.poison();
    ddlam.poison();
    cuda::attention_backward(bp, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
  };
  run_bwd();
  const std::vector<bf16> g1 = dgrad.download(), gk1 = dgk.download(), gv1 = dgv.download();
  const std::vector<float> dl1 = ddlam.download();

  std::vector<double> dq_ref(n), dk_ref(nkv), dv_ref(nkv), dlam_ref(nt);
  cpu::attention_backward(shape, c.mode, q.data(), k.data(), v.data(), lamd.data(), o_gpu.data(), lse_gpu.data(),
                          dout.data(), dq_ref.data(), dk_ref.data(), dv_ref.data(), dlam_ref.data());
  const std::vector<double> dq_gpu = gather(c, g1, vq), dk_gpu = gather(c, c.fused ? g1 : gk1, vk),
                            dv_gpu = gather(c, c.fused ? g1 : gv1, vv);
  e.dq = test::rel_l2(dq_gpu, dq_ref);
  e.dk = test::rel_l2(dk_gpu, dk_ref);
  e.dv = test::rel_l2(dv_gpu, dv_ref);
  EXPECT_TRUE(test::close_l2(dq_gpu, dq_ref, 2e-2, 1e-4)) << "dq rel err " << e.dq;
  EXPECT_TRUE(test::close_l2(dk_gpu, dk_ref, 2e-2, 1e-4)) << "dk rel err " << e.dk;
  EXPECT_TRUE(test::close_l2(dv_gpu, dv_ref, 1e-2, 1e-4)) << "dv rel err " << e.dv;
  const std::vector<double> dlam_gpu = to_double(dl1);
  if (c.mode == AttnMode::gatedfwa) {
    e.dlam = test::rel_l2(dlam_gpu, dlam_ref);
    EXPECT_TRUE(test::close_l2(dlam_gpu, dlam_ref, 1e-3, 1e-5)) << "dlam rel err " << e.dlam;
  }
  std::printf("  %-44s %s o %.1e lse %.1e dq %.1e dk %.1e dv %.1e dlam %.1e\n", name(c).c_str(),
              cuda::attn_path_name(path), e.o, e.lse, e.dq, e.dk, e.dv, e.dlam);

  // Determinism: a second backward gives the same bits.
  run_bwd();
  EXPECT_EQ(0, std::memcmp(g1.data(), dgrad.download().data(), g1.size() * sizeof(bf16)));
  EXPECT_EQ(0, std::memcmp(gk1.data(), dgk.download().data(), gk1.size() * sizeof(bf16)));
  EXPECT_EQ(0, std::memcmp(gv1.data(), dgv.download().data(), gv1.size() * sizeof(bf16)));
  if (c.mode == AttnMode::gatedfwa) {
    EXPECT_EQ(0, std::memcmp(dl1.data(), ddlam.download().data(), nt * 4));
  }
  return {o_gpu, lse_gpu, dq_gpu, dk_gpu, dv_gpu, dlam_gpu};
}

// Tile sizes of the mma.sync kernels: 64 (key tiles of the forward and dQ, query tiles of dK/dV) and 128.
std::vector<Case> window_cases() {
  std::vector<Case> cs;
  uint64_t seed = 100;
  const int T = 333;  // not a multiple of any tile
  for (int D : {64, 128})
    for (AttnMode m : {AttnMode::swa, AttnMode::gatedfwa})
      for (int W : {1, 63, 64, 65, 127, 128, 129, T, T + 37}) {
        const bool strong = (seed % 2) == 0;
        cs.push_back({2, T, 3, D, W, m, strong ? 3.0 : 0.02, (seed % 3) == 0, seed});
        ++seed;
      }
  return cs;
}

std::vector<Case> full_cases() {
  std::vector<Case> cs;
  uint64_t seed = 200;
  for (int D : {64, 128})
    for (int T : {1, 7, 130, 517}) cs.push_back({2, T, 2, D, 1, AttnMode::full, 0.0, T == 130, seed++});
  return cs;
}

// Every case on both paths and both sm90 forward schedules; test names end in _sm80, _sm90 (the default schedule for
// the mode and head dim, forward and backward) and _sm90_per_tile or _sm90_persistent, the other one.
class AttentionCuda : public ::testing::TestWithParam<std::tuple<Case, Kernels>> {};
TEST_P(AttentionCuda, MatchesCpuReference) {
  const auto& [c, kernels] = GetParam();
  GFWA_SKIP_UNLESS_PATH_RUNS(kernels.path);
  run_case(c, kernels);
}
auto on_both_paths(const std::vector<Case>& cs) {
  std::vector<std::tuple<Case, Kernels>> runs;
  for (const Case& c : cs) {
    cuda::AttnParams p{};
    p.D = c.D;
    p.mode = c.mode;
    const cuda::Sm90FwdSchedule other = cuda::sm90_fwd_schedule(p) == cuda::Sm90FwdSchedule::per_tile
                                            ? cuda::Sm90FwdSchedule::persistent
                                            : cuda::Sm90FwdSchedule::per_tile;
    for (Kernels k : {Kernels{AttnPath::sm80}, Kernels{AttnPath::sm90}, Kernels{AttnPath::sm90, other}})
      runs.emplace_back(c, k);
  }
  return ::testing::ValuesIn(runs);
}
std::string case_name(const ::testing::TestParamInfo<std::tuple<Case, Kernels>>& info) {
  return name(std::get<0>(info.param)) + "_" + kernels_name(std::get<1>(info.param));
}
INSTANTIATE_TEST_SUITE_P(Windows, AttentionCuda, on_both_paths(window_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Full, AttentionCuda, on_both_paths(full_cases()), case_name);
// Long T: |lam| reaches ~5e4 (mean log-gate -1.5), where un-rebased fp32 biases would lose ~1e-2 in the
// logits. Small B*H and W keep the double reference fast.
INSTANTIATE_TEST_SUITE_P(LongT, AttentionCuda,
                         on_both_paths({Case{1, 32768 + 77, 2, 64, 100, AttnMode::gatedfwa, 3.0, false, 300},
                                        Case{1, 32768 + 77, 1, 128, 70, AttnMode::gatedfwa, 3.0, true, 301},
                                        Case{1, 32768 + 5, 1, 128, 200, AttnMode::swa, 0.0, false, 302}}),
                         case_name);

// The sm_90a kernels' tiles. Forward: 128 query rows (two warpgroups of 64) by 128 keys. Backward: 128 keys (two
// warpgroups of 64) by query tiles of 64 (D 128) or 128 (D 64), each query tile's dQ added by its key tiles in order.
// Windows of 127-257 keys span one to three key tiles and end inside or on a tile edge; T = 65 leaves the second
// warpgroup one row (forward) or one key (backward), T = 64 none, T = 129 gives a second tile of one row. W = T = 1100:
// 9 key tiles add into the last query tiles' dQ (the ordered accumulation), 8 query tiles per key tile at D = 128.
// The persistent forward schedule runs several items per CTA only when there are more items (query tiles x heads x
// batch) than SMs (132 on an H100/H200): the last four cases have 270-450 items of 1-6 key tiles, so the ring, the Q
// buffers and the ping-pong carry on across items of different lengths (at D 128 the items also fall into groups of
// (batch, head) pairs, the last one smaller).
std::vector<Case> tile_cases() {
  std::vector<Case> cs;
  uint64_t seed = 500;
  for (int D : {64, 128})
    for (int W : {127, 128, 129, 255, 256, 257}) cs.push_back({1, 1000, 2, D, W, AttnMode::gatedfwa, 3.0, false, seed++});
  for (int D : {64, 128})
    for (int T : {64, 65, 129}) cs.push_back({2, T, 2, D, 33, AttnMode::gatedfwa, 0.02, D == 64, seed++});
  cs.push_back({1, 1100, 2, 64, 1100, AttnMode::gatedfwa, 0.02, false, seed++});
  cs.push_back({1, 1100, 2, 128, 1100, AttnMode::swa, 0.0, true, seed++});
  cs.push_back({3, 300, 50, 64, 129, AttnMode::gatedfwa, 3.0, false, seed++});
  cs.push_back({3, 300, 50, 128, 1, AttnMode::full, 0.0, true, seed++});
  cs.push_back({2, 520, 40, 128, 200, AttnMode::gatedfwa, 0.02, true, seed++, 10});
  cs.push_back({1, 1100, 30, 64, 600, AttnMode::swa, 0.0, false, seed++, 5});
  return cs;
}
INSTANTIATE_TEST_SUITE_P(Tiles, AttentionCuda, on_both_paths(tile_cases()), case_name);

// Grouped-query attention: 4 query heads over 2 K/V heads and multi-query (1), both head dims, fused and
// separate layouts. The dK/dV kernel sums the group inside one CTA: these also check that the group's
// heads are all visited (a missing one leaves dk, dv off by its share) and that dlam is per query head.
std::vector<Case> grouped_cases() {
  std::vector<Case> cs;
  uint64_t seed = 400;
  const int T = 333;
  for (int D : {64, 128})
    for (int kv : {1, 2})
      for (AttnMode m : {AttnMode::swa, AttnMode::gatedfwa})
        for (int W : {65, 128, T}) {
          cs.push_back({2, T, 4, D, W, m, (seed % 2) == 0 ? 3.0 : 0.02, (seed % 3) == 0, seed, kv});
          ++seed;
        }
  for (int D : {64, 128}) cs.push_back({2, 130, 6, D, 1, AttnMode::full, 0.0, D == 64, seed++, 2});
  return cs;
}
INSTANTIATE_TEST_SUITE_P(GroupedQuery, AttentionCuda, on_both_paths(grouped_cases()), case_name);

// The two paths on the same inputs agree to bf16 rounding (each is also checked against the reference above; each
// backward takes its own forward's o and lse): o within 4e-3 relative L2 (each path carries ~2e-3 from P and O in
// bf16), lse within 2e-5 (fp32 only); dq, dk, dv within 1e-2 (~3e-3 each from P, dS in bf16 and the rounded
// outputs); dlam within 1e-2 (fp32 sums, ~4e-6 each against the reference, but delta comes from each path's own
// bf16 o, which differ by the 4e-3 above).
class AttentionCudaPaths : public ::testing::TestWithParam<Case> {};
TEST_P(AttentionCudaPaths, Sm90MatchesSm80) {
  GFWA_SKIP_UNLESS_PATH_RUNS(AttnPath::sm90);
  const Case& c = GetParam();
  const RunOut a = run_case(c, {AttnPath::sm80}), b = run_case(c, {AttnPath::sm90});
  const double eo = test::rel_l2(b.o, a.o), el = test::rel_l2(b.lse, a.lse), eq = test::rel_l2(b.dq, a.dq),
               ek = test::rel_l2(b.dk, a.dk), ev = test::rel_l2(b.dv, a.dv);
  std::printf("  %-44s sm90 vs sm80: o %.1e lse %.1e dq %.1e dk %.1e dv %.1e", name(c).c_str(), eo, el, eq, ek, ev);
  EXPECT_LT(eo, 4e-3);
  EXPECT_LT(el, 2e-5);
  EXPECT_LT(eq, 1e-2);
  EXPECT_LT(ek, 1e-2);
  EXPECT_LT(ev, 1e-2);
  if (c.mode == AttnMode::gatedfwa) {
    const double ed = test::rel_l2(b.dlam, a.dlam);
    std::printf(" dlam %.1e", ed);
    EXPECT_LT(ed, 1e-2);
  }
  std::printf("\n");
}
INSTANTIATE_TEST_SUITE_P(Shapes, AttentionCudaPaths,
                         ::testing::Values(Case{2, 1000, 4, 128, 300, AttnMode::gatedfwa, 3.0, true, 600, 2},
                                           Case{2, 333, 3, 64, 129, AttnMode::swa, 0.0, false, 601},
                                           Case{1, 517, 2, 128, 1, AttnMode::full, 0.0, false, 602},
                                           Case{1, 4099, 2, 64, 1024, AttnMode::gatedfwa, 0.02, false, 603, 1}),
                         [](const auto& info) { return name(info.param); });

// automatic takes sm90 exactly on compute capability 9.0; a forced sm90 elsewhere is refused, naming the device.
TEST(AttentionCudaApi, ForwardPathFollowsTheDevice) {
  GFWA_SKIP_WITHOUT_GPU();
  const bool sm90 = test::cuda_device_is_sm90();
  cuda::AttnParams p{};
  EXPECT_EQ(cuda::attention_path(p), sm90 ? AttnPath::sm90 : AttnPath::sm80);
  p.path = AttnPath::sm80;
  EXPECT_EQ(cuda::attention_path(p), AttnPath::sm80);
  p.path = AttnPath::sm90;
  if (sm90) {
    EXPECT_EQ(cuda::attention_path(p), AttnPath::sm90);
  } else {
    try {
      cuda::attention_path(p);
      ADD_FAILURE() << "path sm90 accepted on a GPU that is not compute capability 9.0";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("path sm90 needs a compute capability 9.0 GPU"), std::string::npos)
          << e.what();
    }
  }
}

TEST(AttentionCudaApi, PathNamesParse) {
  for (AttnPath p : {AttnPath::automatic, AttnPath::sm80, AttnPath::sm90}) {
    AttnPath back = AttnPath::sm80;
    EXPECT_TRUE(cuda::parse_attn_path(cuda::attn_path_name(p), &back));
    EXPECT_EQ(back, p);
  }
  AttnPath unused;
  EXPECT_FALSE(cuda::parse_attn_path("sm100", &unused));
}

TEST(AttentionCudaApi, Sm90ScheduleNamesParse) {
  using cuda::Sm90FwdSchedule;
  for (Sm90FwdSchedule s : {Sm90FwdSchedule::automatic, Sm90FwdSchedule::per_tile, Sm90FwdSchedule::persistent}) {
    Sm90FwdSchedule back = Sm90FwdSchedule::automatic;
    EXPECT_TRUE(cuda::parse_sm90_fwd_schedule(cuda::sm90_fwd_schedule_name(s), &back));
    EXPECT_EQ(back, s);
  }
  Sm90FwdSchedule unused;
  EXPECT_FALSE(cuda::parse_sm90_fwd_schedule("2", &unused));
  EXPECT_FALSE(cuda::parse_sm90_fwd_schedule("per_tile", &unused));
}

// auto: one CTA per tile for full attention at D 128 (24 / 240 registers, measured faster there), persistent for
// the windowed modes and at D 64; an explicit schedule is kept at either head dim (docs/kernel_notes.md v7).
TEST(AttentionCudaApi, Sm90ScheduleDefaultsByModeAndHeadDim) {
  using cuda::Sm90FwdSchedule;
  cuda::AttnParams p{};
  p.D = 128;
  p.mode = AttnMode::full;
  EXPECT_EQ(cuda::sm90_fwd_schedule(p), Sm90FwdSchedule::per_tile);
  for (AttnMode m : {AttnMode::swa, AttnMode::gatedfwa}) {
    p.mode = m;
    EXPECT_EQ(cuda::sm90_fwd_schedule(p), Sm90FwdSchedule::persistent);
  }
  p.D = 64;
  p.mode = AttnMode::full;
  EXPECT_EQ(cuda::sm90_fwd_schedule(p), Sm90FwdSchedule::persistent);
  for (int D : {64, 128})
    for (Sm90FwdSchedule s : {Sm90FwdSchedule::per_tile, Sm90FwdSchedule::persistent}) {
      p.D = D;
      p.sm90_schedule = s;
      EXPECT_EQ(cuda::sm90_fwd_schedule(p), s);
    }
}

// A one-token swa call with H heads over Hkv and head dim D (null tensors: the shape is checked first).
cuda::AttnParams one_token(int H, int Hkv, int D) {
  cuda::AttnParams p{};
  p.B = p.T = 1;
  p.H = H;
  p.Hkv = Hkv;
  p.D = D;
  p.window = 1;
  p.mode = AttnMode::swa;
  return p;
}
// The argument check throws naming `part`.
void expect_refused(const cuda::AttnParams& p, const std::string& part) {
  try {
    cuda::attention_forward(p, nullptr);
    ADD_FAILURE() << "accepted; expected an error containing: " << part;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(AttentionCudaApi, RejectsKvHeadsThatDoNotDivideTheQueryHeads) {
  expect_refused(one_token(4, 3, 64), "Hkv=3 must divide the query heads H=4");
}

TEST(AttentionCudaApi, RejectsUnsupportedHeadDim) { expect_refused(one_token(1, 1, 96), "D=96"); }

TEST(AttentionCudaApi, RejectsUnknownSm90Schedule) {
  for (int v : {-1, 3}) {
    cuda::AttnParams p = one_token(1, 1, 64);
    p.sm90_schedule = static_cast<cuda::Sm90FwdSchedule>(v);
    expect_refused(p, "sm90_schedule " + std::to_string(v) + " unknown (auto, per-tile or persistent)");
  }
}

}  // namespace
#endif  // GFWA_WITH_CUDA
