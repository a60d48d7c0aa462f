// cuBLASLt matmul wrapper vs the CPU linear layer (matmul_cpu) in double on the same bf16 inputs.
#ifdef GFWA_WITH_CUDA
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/matmul.cuh"
#include "kernels/matmul_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

struct Shape {
  int N, in, out;
};

class MatmulCuda : public ::testing::TestWithParam<Shape> {};

TEST_P(MatmulCuda, ForwardBackwardMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  const Shape s = GetParam();
  const uint64_t seed = 1000 + s.N * 7 + s.in * 3 + s.out;
  const auto x = random_bf16_values(size_t(s.N) * s.in, seed);
  const auto w = random_bf16_values(size_t(s.out) * s.in, seed + 1, 0.1);
  const auto dy = random_bf16_values(size_t(s.N) * s.out, seed + 2);
  const auto c = random_bf16_values(size_t(s.N) * s.out, seed + 3);   // residual for beta = 1
  const auto dw0 = random_bf16_values(size_t(s.out) * s.in, seed + 4);  // gradient already accumulated

  const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), dyd(dy.begin(), dy.end());
  std::vector<double> y_ref(size_t(s.N) * s.out), dx_ref(size_t(s.N) * s.in, 0.0), dw_ref(dw0.begin(), dw0.end());
  cpu::matmul_forward(y_ref.data(), xd.data(), wd.data(), static_cast<const double*>(nullptr), s.N, s.in, s.out);
  std::vector<double> yres_ref(y_ref);
  for (size_t i = 0; i < yres_ref.size(); ++i) yres_ref[i] += c[i];
  std::vector<double> dw_only(size_t(s.out) * s.in, 0.0);
  cpu::matmul_backward(dx_ref.data(), dw_only.data(), static_cast<double*>(nullptr), dyd.data(), xd.data(), wd.data(),
                       s.N, s.in, s.out);
  const double alpha = 0.37;
  for (size_t i = 0; i < dw_ref.size(); ++i) dw_ref[i] += alpha * dw_only[i];

  DeviceArray<char> ws(cuda::Matmul::kWorkspaceBytes);
  cuda::Matmul mm(ws.get(), ws.size());
  DeviceArray<bf16> dx_(to_bf16(x)), dw_(to_bf16(w)), ddy(to_bf16(dy)), dc(to_bf16(c));
  DeviceArray<bf16> y(size_t(s.N) * s.out), yres(size_t(s.N) * s.out), dxo(size_t(s.N) * s.in);
  DeviceArray<float> y32(size_t(s.N) * s.out), dwo(dw0);
  y.poison();
  yres.poison();
  dxo.poison();
  y32.poison();
  mm.linear(nullptr, dx_.get(), dw_.get(), y.get(), cuda::OutType::bf16, s.N, s.in, s.out);
  mm.linear(nullptr, dx_.get(), dw_.get(), yres.get(), cuda::OutType::bf16, s.N, s.in, s.out, 1.0f, dc.get());
  mm.linear(nullptr, dx_.get(), dw_.get(), y32.get(), cuda::OutType::f32, s.N, s.in, s.out);
  mm.linear_dx(nullptr, ddy.get(), dw_.get(), dxo.get(), s.N, s.in, s.out);
  mm.linear_dw(nullptr, ddy.get(), dx_.get(), dwo.get(), s.N, s.in, s.out, float(alpha), 1.0f);

  // bf16 outputs: one rounding (2^-9 relative); fp32 outputs: fp32 accumulation only.
  EXPECT_LT(rel_err(to_double(y.download()), y_ref), 4e-3);
  EXPECT_LT(rel_err(to_double(yres.download()), yres_ref), 4e-3);
  EXPECT_LT(rel_err(to_double(y32.download()), y_ref), 1e-5);
  EXPECT_LT(rel_err(to_double(dxo.download()), dx_ref), 4e-3);
  EXPECT_LT(rel_err(to_double(dwo.download()), dw_ref), 1e-5);
}

// Odd sizes (unaligned leading dimensions take the fallback path), the projection shapes of the
// gate (out = H) and a classifier-like wide output.
INSTANTIATE_TEST_SUITE_P(Shapes, MatmulCuda,
                         ::testing::Values(Shape{37, 24, 13}, Shape{129, 64, 3}, Shape{200, 128, 384},
                                           Shape{65, 96, 1031}, Shape{1, 64, 509}));

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
