// SwiGLU forward/backward on the GPU vs swiglu_cpu (double) on the same bf16 inputs.
#ifdef GFWA_WITH_CUDA
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/swiglu.cuh"
#include "kernels/swiglu_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

TEST(SwigluCuda, OddSizesMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  for (const auto& [N, F] : std::vector<std::pair<int, int>>{{37, 13}, {129, 200}, {1, 1}}) {
    const uint64_t seed = 31 + N + F;
    const auto u = random_bf16_values(size_t(N) * 2 * F, seed, 2.0);
    const auto dg = random_bf16_values(size_t(N) * F, seed + 1);
    std::vector<double> a(size_t(N) * F), b(size_t(N) * F), g_ref(size_t(N) * F), da(size_t(N) * F, 0.0),
        db(size_t(N) * F, 0.0);
    for (int n = 0; n < N; ++n)
      for (int j = 0; j < F; ++j) {
        a[size_t(n) * F + j] = u[size_t(n) * 2 * F + j];
        b[size_t(n) * F + j] = u[size_t(n) * 2 * F + F + j];
      }
    const std::vector<double> dgd(dg.begin(), dg.end());
    cpu::swiglu_forward(g_ref.data(), a.data(), b.data(), g_ref.size());
    cpu::swiglu_backward(da.data(), db.data(), dgd.data(), a.data(), b.data(), g_ref.size());
    std::vector<double> du_ref(u.size());
    for (int n = 0; n < N; ++n)
      for (int j = 0; j < F; ++j) {
        du_ref[size_t(n) * 2 * F + j] = da[size_t(n) * F + j];
        du_ref[size_t(n) * 2 * F + F + j] = db[size_t(n) * F + j];
      }
    DeviceArray<bf16> du(to_bf16(u)), ddg(to_bf16(dg)), g(size_t(N) * F);
    g.poison();
    cuda::swiglu_forward(nullptr, du.get(), g.get(), N, F);
    EXPECT_LT(rel_err(to_double(g.download()), g_ref), 4e-3) << N << "x" << F;
    cuda::swiglu_backward(nullptr, ddg.get(), du.get(), N, F);
    EXPECT_LT(rel_err(to_double(du.download()), du_ref), 4e-3) << N << "x" << F;
  }
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
