// Fused AdamW and the deterministic squared-norm on the GPU vs adamw_cpu: per-tensor decay flags,
// a bf16 copy at other (padded) offsets, gradient scaling and bias correction, the 16-byte walk's
// unaligned heads and tails, and the norm's repeatability.
#ifdef GFWA_WITH_CUDA
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/adamw.cuh"
#include "kernels/adamw_cpu.h"
#include "kernels/reduce.cuh"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

// The cpu twin's tensors and their device copies over one chunk list; step() updates both.
struct AdamWBoth {
  std::vector<size_t> offs, boffs, numels;
  std::vector<bool> decay;
  std::vector<float> p, g, m, v;  // the cpu side
  std::vector<cuda::AdamWChunk> chunks;
  DeviceArray<cuda::AdamWChunk> dch;
  DeviceArray<float> dp, dg, dm, dv;
  DeviceArray<bf16> db;  // poisoned at the start
  AdamWBoth(std::vector<size_t> o, std::vector<size_t> bo, std::vector<size_t> n, std::vector<bool> d,
            std::vector<float> p0, std::vector<float> g0, std::vector<float> m0, std::vector<float> v0, size_t bf16_total)
      : offs(std::move(o)), boffs(std::move(bo)), numels(std::move(n)), decay(std::move(d)), p(std::move(p0)),
        g(std::move(g0)), m(std::move(m0)), v(std::move(v0)), chunks(cuda::adamw_chunks(offs, boffs, numels, decay)),
        dch(chunks), dp(p), dg(g), dm(m), dv(v), db(bf16_total) {
    db.poison();
  }
  void step(const AdamWStep& h) {
    for (size_t i = 0; i < numels.size(); ++i)
      cpu::adamw_update(p.data() + offs[i], g.data() + offs[i], m.data() + offs[i], v.data() + offs[i], numels[i], h,
                        decay[i]);
    cuda::adamw_step(nullptr, dch.get(), int(chunks.size()), h, dg.get(), dp.get(), dm.get(), dv.get(), db.get());
  }
};

TEST(AdamWCuda, MatchesCpuOverTensorsWithDecayFlags) {
  GFWA_SKIP_WITHOUT_GPU();
  const std::vector<size_t> numels = {13, 20000, 1, 8193, 77};
  const std::vector<bool> decay = {false, true, false, true, true};
  std::vector<size_t> offs, boffs;
  size_t P = 0, Pb = 0;
  for (size_t n : numels) {
    offs.push_back(P);
    Pb = (Pb + 127) / 128 * 128;
    boffs.push_back(Pb);
    P += n;
    Pb += n;
  }
  auto v0 = random_bf16_values(P, 54, 0.001);
  for (auto& x : v0) x = x * x;
  AdamWBoth a(offs, boffs, numels, decay, random_bf16_values(P, 51, 0.5), random_bf16_values(P, 52, 0.01),
              random_bf16_values(P, 53, 0.001), v0, Pb);
  for (int64_t t = 1; t <= 3; ++t) a.step({1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.8f, t});
  const auto &p = a.p, &m = a.m, &v = a.v;
  auto &dp = a.dp, &dm = a.dm, &dv = a.dv;
  auto& db = a.db;
  auto& dch = a.dch;
  const auto& chunks = a.chunks;
  EXPECT_LT(rel_err(dp.download(), p), 1e-6);
  EXPECT_LT(rel_err(dm.download(), m), 1e-6);
  EXPECT_LT(rel_err(dv.download(), v), 1e-6);
  const auto b = db.download();
  const auto pg = dp.download();
  for (size_t i = 0; i < numels.size(); ++i)
    for (size_t k = 0; k < numels[i]; ++k)
      ASSERT_EQ(from_bf16(b[boffs[i] + k]), from_bf16(to_bf16(pg[offs[i] + k]))) << "tensor " << i << " elem " << k;

  // params_from_master rewrites the copy from the master weights.
  db.poison();
  cuda::params_from_master(nullptr, dch.get(), int(chunks.size()), dp.get(), db.get());
  const auto b2 = db.download();
  for (size_t i = 0; i < numels.size(); ++i)
    for (size_t k = 0; k < numels[i]; ++k) ASSERT_EQ(from_bf16(b2[boffs[i] + k]), from_bf16(b[boffs[i] + k]));
}

// The vectorised walk on fresh inputs: sizes off the 4-element grid and off the chunk size, fp32
// starts in every phase mod 4 with gaps between the tensors (which must stay untouched), bf16 starts
// congruent to the fp32 ones (8-byte stores) and not (2-byte stores), decay on and off. Every
// element is checked against the cpu twin, and every bf16 element against the master weight.
TEST(AdamWCuda, VectorisedWalkMatchesCpuOnUnalignedTensors) {
  GFWA_SKIP_WITHOUT_GPU();
  const std::vector<size_t> numels = {1, 3, 4, 5, 2, 4097, 8191, 8192, 8195, 6, 16387, 30001, 7};
  std::vector<size_t> offs, boffs;
  std::vector<bool> decay;
  size_t P = 0, Pb = 0;
  for (size_t i = 0; i < numels.size(); ++i) {
    P += i % 3;  // a gap of 0, 1 or 2 elements
    offs.push_back(P);
    Pb = (Pb + 127) / 128 * 128 + (P + i) % 4;  // bf16 phase minus fp32 phase = i mod 4
    boffs.push_back(Pb);
    decay.push_back(i % 2 == 1);
    P += numels[i];
    Pb += numels[i] + 1;
  }
  constexpr float kGap = 12345.0f;
  auto fill = [&](uint64_t seed, double std, bool square) {
    auto x = random_bf16_values(P, seed, std);
    std::vector<float> y(P, kGap);
    for (size_t i = 0; i < numels.size(); ++i)
      for (size_t k = 0; k < numels[i]; ++k) y[offs[i] + k] = square ? x[offs[i] + k] * x[offs[i] + k] : x[offs[i] + k];
    return y;
  };
  AdamWBoth a(offs, boffs, numels, decay, fill(81, 0.5, false), fill(82, 0.01, false), fill(83, 0.001, false),
              fill(84, 0.002, true), Pb);
  const std::vector<float> g = a.g;  // the gradient the device must leave unchanged
  for (int64_t t = 1; t <= 2; ++t) a.step({3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t == 1 ? 0.7f : 1.0f, t});
  const auto &p = a.p, &m = a.m, &v = a.v;
  auto &dp = a.dp, &dm = a.dm, &dv = a.dv, &dg = a.dg;
  auto& db = a.db;
  auto& dch = a.dch;
  const auto& chunks = a.chunks;
  const auto gp = dp.download(), gm = dm.download(), gv = dv.download(), gg = dg.download();
  std::vector<bool> in_tensor(P, false);
  for (size_t i = 0; i < numels.size(); ++i)
    for (size_t k = 0; k < numels[i]; ++k) {
      const size_t j = offs[i] + k;
      in_tensor[j] = true;
      ASSERT_NEAR(gp[j], p[j], 2e-6 * std::fabs(p[j]) + 1e-7) << "master, tensor " << i << " elem " << k;
      ASSERT_NEAR(gm[j], m[j], 2e-6 * std::fabs(m[j]) + 1e-9) << "m, tensor " << i << " elem " << k;
      ASSERT_NEAR(gv[j], v[j], 2e-6 * std::fabs(v[j]) + 1e-12) << "v, tensor " << i << " elem " << k;
    }
  for (size_t j = 0; j < P; ++j) {
    ASSERT_EQ(gg[j], g[j]) << "grad elem " << j;  // read only
    if (!in_tensor[j]) {
      ASSERT_EQ(gp[j], kGap) << "master gap elem " << j;
      ASSERT_EQ(gm[j], kGap) << "m gap elem " << j;
      ASSERT_EQ(gv[j], kGap) << "v gap elem " << j;
    }
  }
  auto check_copy = [&](const char* what) {
    const auto b = db.download();
    std::vector<bool> written(Pb, false);
    for (size_t i = 0; i < numels.size(); ++i)
      for (size_t k = 0; k < numels[i]; ++k) {
        written[boffs[i] + k] = true;
        ASSERT_EQ(from_bf16(b[boffs[i] + k]), from_bf16(to_bf16(gp[offs[i] + k])))
            << what << ", tensor " << i << " elem " << k;
      }
    for (size_t j = 0; j < Pb; ++j) {
      if (!written[j]) {
        ASSERT_TRUE(std::isnan(from_bf16(b[j]))) << what << " wrote gap elem " << j;
      }
    }
  };
  check_copy("adamw_step");
  db.poison();
  cuda::params_from_master(nullptr, dch.get(), int(chunks.size()), dp.get(), db.get());
  check_copy("params_from_master");
}

// The walk reads whole 16-byte groups from 4-aligned indices, so it refuses other base pointers
// (before any launch).
TEST(AdamWCuda, RefusesUnalignedBuffers) {
  alignas(16) static float buf[8];
  alignas(16) static bf16 copy[8];
  const AdamWStep h{1e-3, 0.9, 0.95, 1e-8, 0.0, 1.0, 1};
  const auto* ch = reinterpret_cast<const cuda::AdamWChunk*>(buf);  // never read: the check comes first
  EXPECT_THROW(cuda::adamw_step(nullptr, ch, 1, h, buf + 1, buf, buf, buf, copy), std::invalid_argument);
  EXPECT_THROW(cuda::adamw_step(nullptr, ch, 1, h, buf, buf, buf + 2, buf, copy), std::invalid_argument);
  EXPECT_THROW(cuda::adamw_step(nullptr, ch, 1, h, buf, buf, buf, buf, copy + 1), std::invalid_argument);
  EXPECT_THROW(cuda::params_from_master(nullptr, ch, 1, buf + 3, copy), std::invalid_argument);
}

// The squared norm on sizes off the 4-element grid from every start phase mod 4 (Muon passes
// matrices at any offset), against the cpu; the slices begin and end on large distinct values, so
// a dropped or misplaced element outside the 16-byte groups shows. Bitwise equal on a second run.
TEST(AdamWCuda, SumSquaresMatchesCpuOnOddSizesAndIsBitwiseRepeatable) {
  GFWA_SKIP_WITHOUT_GPU();
  constexpr size_t N = 9000011;  // > 2 rounds of kGradNormBlocks x 256 threads x 4 groups x 4 floats
  auto x = random_bf16_values(N, 61, 0.3);
  for (size_t i = 0; i < 8; ++i) {
    x[i] = 20.0f + float(i);
    x[N - 1 - i] = -30.0f - float(i);
  }
  DeviceArray<float> dx(x), partial(cuda::kGradNormBlocks);
  DeviceArray<double> out(1);
  std::vector<std::pair<size_t, size_t>> cases;  // (start, n)
  for (size_t off = 0; off < 4; ++off) {
    for (size_t n : {1, 2, 3, 4, 5, 7}) cases.push_back({off, n});
    for (size_t e = 0; e < 4; ++e) cases.push_back({off, N - off - e});
  }
  cases.push_back({1, 1000003});
  for (const auto& [off, n] : cases) {
    partial.poison();
    out.poison();
    cuda::sum_squares(nullptr, dx.get() + off, n, partial.get(), out.get());
    const double got = out.download()[0], ref = cpu::sum_squares(x.data() + off, n);
    EXPECT_NEAR(got, ref, 1e-6 * ref) << "start " << off << " n " << n;
    partial.poison();
    out.poison();
    cuda::sum_squares(nullptr, dx.get() + off, n, partial.get(), out.get());
    EXPECT_EQ(got, out.download()[0]) << "start " << off << " n " << n;
  }
}

TEST(ReduceCuda, ColumnSumsMatchHost) {
  GFWA_SKIP_WITHOUT_GPU();
  for (const auto& [N, C] : std::vector<std::pair<int, int>>{{1031, 12}, {3, 7}, {600, 1}}) {
    const auto x = random_bf16_values(size_t(N) * C, 71 + N);
    std::vector<double> ref(C, 0.0);
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) ref[c] += x[size_t(n) * C + c];
    DeviceArray<float> dx(x), partial(size_t(cuda::partial_blocks(N)) * C), out(C);
    partial.poison();
    out.poison();
    cuda::colsum_partials(nullptr, dx.get(), N, C, partial.get());
    cuda::finish_partials(nullptr, partial.get(), cuda::partial_blocks(N), C, out.get(), false);
    EXPECT_LT(rel_err(out.download(), ref), 1e-6);
  }
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
