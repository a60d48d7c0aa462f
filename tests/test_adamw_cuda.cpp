// Fused AdamW and the deterministic squared-norm on the GPU vs adamw_cpu: per-tensor decay flags,
// a bf16 copy at other (padded) offsets, gradient scaling and bias correction.
#ifdef GFWA_WITH_CUDA
#include <cmath>
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
  auto p = random_bf16_values(P, 51, 0.5), g = random_bf16_values(P, 52, 0.01);
  auto m = random_bf16_values(P, 53, 0.001), v = random_bf16_values(P, 54, 0.001);
  for (auto& x : v) x = x * x;
  const auto chunks = cuda::adamw_chunks(offs, boffs, numels, decay);
  DeviceArray<cuda::AdamWChunk> dch(chunks);
  DeviceArray<float> dp(p), dg(g), dm(m), dv(v);
  DeviceArray<bf16> db(Pb);
  db.poison();
  for (int64_t t = 1; t <= 3; ++t) {
    const AdamWStep h{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.8f, t};
    for (size_t i = 0; i < numels.size(); ++i)
      cpu::adamw_update(p.data() + offs[i], g.data() + offs[i], m.data() + offs[i], v.data() + offs[i], numels[i], h,
                        decay[i]);
    cuda::adamw_step(nullptr, dch.get(), int(chunks.size()), h, dg.get(), dp.get(), dm.get(), dv.get(), db.get());
  }
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

TEST(AdamWCuda, SumSquaresIsDeterministicAndMatchesCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  const auto x = random_bf16_values(1000003, 61, 0.3);
  DeviceArray<float> dx(x), partial(cuda::kGradNormBlocks);
  DeviceArray<double> out(1);
  out.poison();
  cuda::sum_squares(nullptr, dx.get(), x.size(), partial.get(), out.get());
  const double got = out.download()[0];
  EXPECT_NEAR(got, cpu::sum_squares(x.data(), x.size()), 1e-5 * got);
  cuda::sum_squares(nullptr, dx.get(), x.size(), partial.get(), out.get());
  EXPECT_EQ(got, out.download()[0]);
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
