// Row arg max on the GPU vs its CPU twin on the same bf16 values, ties included (lowest id wins).
#ifdef GFWA_WITH_CUDA
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/argmax.cuh"
#include "kernels/argmax_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;

TEST(ArgmaxCuda, MatchesCpuWithTies) {
  GFWA_SKIP_WITHOUT_GPU();
  for (const auto& [R, V] : std::vector<std::pair<int, int>>{{37, 1031}, {5, 50304}, {3, 1}, {64, 300}}) {
    auto x = random_bf16_values(size_t(R) * V, 17 + R + V, 2.0);
    for (auto& v : x) v = std::round(v);  // few distinct values: every row has tied maxima
    std::vector<int32_t> want(static_cast<size_t>(R));
    cpu::argmax_rows(x.data(), R, V, want.data());
    DeviceArray<__nv_bfloat16> dx(to_bf16(x));
    DeviceArray<int32_t> out(R);
    out.poison();
    cuda::argmax_rows(nullptr, dx.get(), R, V, out.get());
    EXPECT_EQ(out.download(), want) << R << "x" << V;
  }
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
