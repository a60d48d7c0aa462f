// Fused softmax + cross-entropy + logit gradient on the GPU vs cross_entropy_cpu (double) on the
// same bf16 logits; the loss sum is reduced on the device in a fixed order.
#ifdef GFWA_WITH_CUDA
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/cross_entropy.cuh"
#include "kernels/cross_entropy_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

TEST(ClassifierCuda, OddSizesMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  // V % 8 == 0 and two rows fitting an SM's shared memory (1032, 50304 on sm_90) take the shared-memory
  // path, 60000 the register one on H100/H200, the others the generic one.
  for (const auto& [R, V] :
       std::vector<std::pair<int, int>>{{37, 1031}, {5, 50304}, {1, 3}, {19, 1032}, {3, 60000}, {2, 8}}) {
    const uint64_t seed = 41 + R + V;
    const auto logits = random_bf16_values(size_t(R) * V, seed, 3.0);
    const auto targets = random_ids(size_t(R), V, seed + 1);
    const double dloss = 0.7;
    std::vector<double> ref(logits.begin(), logits.end());
    const double loss_ref = cpu::cross_entropy_forward_backward(ref.data(), targets.data(), R, V, dloss);

    DeviceArray<bf16> dl(to_bf16(logits));
    DeviceArray<int32_t> dt(targets);
    DeviceArray<float> rows(R), sum(1);
    rows.poison();
    sum.poison();
    cuda::softmax_xent(nullptr, dl.get(), dt.get(), rows.get(), R, V, float(dloss / R), true);
    cuda::sum_deterministic(nullptr, rows.get(), R, sum.get());
    EXPECT_NEAR(sum.download()[0] / R, loss_ref, 1e-4 * std::max(1.0, loss_ref)) << R << "x" << V;
    const auto grad = dl.download();
    const auto loss_rows = rows.download();
    EXPECT_LT(rel_err(to_double(grad), ref), 4e-3) << R << "x" << V;

    // Bitwise repeatable: the same input gives the same bits.
    DeviceArray<bf16> dl_again(to_bf16(logits));
    rows.poison();
    cuda::softmax_xent(nullptr, dl_again.get(), dt.get(), rows.get(), R, V, float(dloss / R), true);
    const auto grad_again = dl_again.download();
    const auto loss_rows_again = rows.download();
    EXPECT_EQ(0, std::memcmp(grad.data(), grad_again.data(), grad.size() * sizeof(bf16))) << R << "x" << V;
    EXPECT_EQ(0, std::memcmp(loss_rows.data(), loss_rows_again.data(), R * sizeof(float))) << R << "x" << V;

    // Loss only: the logits stay untouched.
    DeviceArray<bf16> dl2(to_bf16(logits));
    cuda::softmax_xent(nullptr, dl2.get(), dt.get(), rows.get(), R, V, 1.0f, false);
    cuda::sum_deterministic(nullptr, rows.get(), R, sum.get());
    EXPECT_NEAR(sum.download()[0] / R, loss_ref, 1e-4 * std::max(1.0, loss_ref));
    EXPECT_EQ(rel_err(to_double(dl2.download()), std::vector<double>(logits.begin(), logits.end())), 0.0);
  }
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
