// RMSNorm forward/backward on the GPU vs rmsnorm_cpu (double) on the same bf16 inputs; the input
// gradient is added to an existing residual gradient, the weight gradient goes through the
// deterministic partial sums.
#ifdef GFWA_WITH_CUDA
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rmsnorm_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

// accumulate: the input gradient is added to dres (the layers' norms); otherwise it overwrites a
// poisoned dres (the final norm).
void run_case(int N, int C, uint64_t seed, bool accumulate = true) {
  const double eps = 1e-6;
  const auto x = random_bf16_values(size_t(N) * C, seed, 1.5);
  const auto w = random_bf16_values(size_t(C), seed + 1, 0.2, 1.0);
  const auto dy = random_bf16_values(size_t(N) * C, seed + 2);
  const auto dres0 = random_bf16_values(size_t(N) * C, seed + 3);
  const auto dw0 = random_bf16_values(size_t(C), seed + 4);
  const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), dyd(dy.begin(), dy.end());
  std::vector<double> y_ref(xd.size()), rstd_ref(N), dx_ref(dres0.size(), 0.0), dw_ref(dw0.begin(), dw0.end());
  if (accumulate) dx_ref.assign(dres0.begin(), dres0.end());
  cpu::rmsnorm_forward(y_ref.data(), rstd_ref.data(), xd.data(), wd.data(), N, C, eps);
  cpu::rmsnorm_backward(dx_ref.data(), dw_ref.data(), dyd.data(), xd.data(), wd.data(), rstd_ref.data(), N, C);

  DeviceArray<bf16> dx_in(to_bf16(x)), dwt(to_bf16(w)), ddy(to_bf16(dy)), y(size_t(N) * C), dres(to_bf16(dres0));
  DeviceArray<float> rstd(N), partial(size_t(cuda::partial_blocks(N)) * C), dw(dw0);
  y.poison();
  rstd.poison();
  partial.poison();
  cuda::rmsnorm_forward(nullptr, dx_in.get(), dwt.get(), y.get(), rstd.get(), N, C, float(eps));
  EXPECT_LT(rel_err(to_double(y.download()), y_ref), 4e-3);
  EXPECT_LT(rel_err(rstd.download(), rstd_ref), 1e-6);
  if (!accumulate) dres.poison();
  cuda::rmsnorm_backward(nullptr, ddy.get(), dx_in.get(), dwt.get(), rstd.get(), dres.get(), accumulate, partial.get(),
                         N, C);
  cuda::finish_partials(nullptr, partial.get(), cuda::partial_blocks(N), C, dw.get(), true);
  EXPECT_LT(rel_err(to_double(dres.download()), dx_ref), 4e-3);
  EXPECT_LT(rel_err(dw.download(), dw_ref), 1e-5);
}

// d % 8 == 0 takes the group kernels (a thread per 8 channels; blocks walk ranges of rows: the backward's 512
// partial blocks, the forward's one per resident slot), other widths the generic ones.
TEST(RmsnormCuda, OddSizesMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  run_case(37, 24, 21);
  run_case(777, 768, 25);   // the 124m width
  run_case(5, 1024, 26);
  run_case(1031, 200, 22);  // more rows than partial blocks
  run_case(3, 1000, 23);
  run_case(64, 4096, 24);   // the largest supported width: 512 threads
  run_case(777, 768, 27, false);
  run_case(9, 1000, 28, false);
  run_case(300, 1024, 29);
  run_case(700, 1001, 33);  // generic kernels
  run_case(50, 13, 34, false);
}

// The presets' widths (350m 1024, 774m 1280, 1.3b 2048) with several rows per block in both kernels.
TEST(RmsnormCuda, PresetWidthsWithManyRowsPerBlockMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  run_case(5000, 768, 35);
  run_case(1500, 1024, 36, false);
  run_case(1500, 1280, 31);
  run_case(2000, 2048, 30);
  run_case(1100, 2048, 32, false);
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
