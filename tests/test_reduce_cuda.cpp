// The packing helpers of the skinny projections (kernels/reduce.cuh) against plain loops: the bias broadcast
// into its columns of packed rows (zeros elsewhere), the strided f32 -> bf16 conversion into a GEMM
// operand's columns (the others untouched), and the fp32 add of a weight gradient formed apart.
#ifdef GFWA_WITH_CUDA
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/reduce.cuh"

using namespace gfwa;
using gfwa::test::DeviceBuffer;

namespace {

using bf16 = __nv_bfloat16;

TEST(ReduceCuda, BroadcastRowsFillsItsColumnsAndZerosTheRest) {
  GFWA_SKIP_WITHOUT_GPU();
  const int N = 37, C = 5, c0 = 3, ld = 11;
  std::vector<float> bias(C);
  for (int c = 0; c < C; ++c) bias[c] = 0.25f * float(c) - 1.0f;
  DeviceBuffer<float> d_bias(C), out(size_t(N) * ld);
  d_bias.upload(bias);
  out.poison();
  cuda::broadcast_rows(nullptr, d_bias.get(), N, C, c0, ld, out.get());
  const std::vector<float> got = out.download();
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < ld; ++c)
      ASSERT_EQ(got[size_t(n) * ld + c], c >= c0 && c < c0 + C ? bias[c - c0] : 0.0f) << n << ", " << c;
  EXPECT_THROW(cuda::broadcast_rows(nullptr, d_bias.get(), N, C, 7, ld, out.get()), std::invalid_argument);
}

TEST(ReduceCuda, F32ToBf16RowsWritesOnlyItsColumns) {
  GFWA_SKIP_WITHOUT_GPU();
  const int rows = 53, cols = 6, in_ld = 6, out_ld = 17, col = 4;
  std::vector<float> in(size_t(rows) * in_ld);
  for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(float(i)) * 3.0f;
  DeviceBuffer<float> d_in(in.size());
  DeviceBuffer<bf16> out(size_t(rows) * out_ld);
  d_in.upload(in);
  out.poison();
  cuda::f32_to_bf16_rows(nullptr, d_in.get(), in_ld, out.get() + col, out_ld, rows, cols);
  const std::vector<bf16> got = out.download();
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < out_ld; ++c) {
      const float g = __bfloat162float(got[size_t(r) * out_ld + c]);
      if (c < col || c >= col + cols) {
        ASSERT_TRUE(std::isnan(g)) << "row " << r << " column " << c << " written";
        continue;
      }
      ASSERT_EQ(g, __bfloat162float(__float2bfloat16(in[size_t(r) * in_ld + c - col]))) << r << ", " << c;
    }
  EXPECT_THROW(cuda::f32_to_bf16_rows(nullptr, d_in.get(), in_ld, out.get(), 5, rows, cols), std::invalid_argument);
}

TEST(ReduceCuda, AddF32Accumulates) {
  GFWA_SKIP_WITHOUT_GPU();
  const size_t n = 100003;
  std::vector<float> a(n), b(n);
  for (size_t i = 0; i < n; ++i) {
    a[i] = float(i % 97) * 0.125f;
    b[i] = 1.0f / float(1 + i % 13);
  }
  DeviceBuffer<float> d_a(n), d_b(n);
  d_a.upload(a);
  d_b.upload(b);
  cuda::add_f32(nullptr, d_a.get(), d_b.get(), n);
  const std::vector<float> got = d_b.download();
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], b[i] + a[i]) << i;
}

}  // namespace
#endif  // GFWA_WITH_CUDA
