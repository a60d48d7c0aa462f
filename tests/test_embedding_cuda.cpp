// Embedding forward/backward on the GPU vs embedding_cpu; the backward must be bitwise
// reproducible (no atomics) and index building must reject out-of-vocabulary ids.
#ifdef GFWA_WITH_CUDA
#include <cstring>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/embedding.cuh"
#include "kernels/embedding_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

void run_case(int N, int V, int C, uint64_t seed) {
  // A small vocabulary range makes repeated ids (the hard case of the backward).
  auto ids = random_ids(size_t(N), std::min(V, 17), seed);
  ids[0] = V - 1;
  const auto table = random_bf16_values(size_t(V) * C, seed + 1);
  const auto dy = random_bf16_values(size_t(N) * C, seed + 2);
  const auto dtab0 = random_bf16_values(size_t(V) * C, seed + 3);

  std::vector<double> y_ref(size_t(N) * C), dtab_ref(dtab0.begin(), dtab0.end());
  const std::vector<double> tabd(table.begin(), table.end()), dyd(dy.begin(), dy.end());
  cpu::embedding_forward(y_ref.data(), ids.data(), tabd.data(), N, C);
  cpu::embedding_backward(dtab_ref.data(), ids.data(), dyd.data(), N, C);

  DeviceArray<int32_t> did(ids);
  DeviceArray<bf16> dtab(to_bf16(table)), ddy(to_bf16(dy)), y(size_t(N) * C);
  y.poison();
  cuda::embedding_forward(nullptr, did.get(), dtab.get(), y.get(), N, C);
  EXPECT_EQ(rel_err(to_double(y.download()), y_ref), 0.0);

  const cuda::TokenIndex ix = cuda::make_token_index(ids.data(), N, V);
  DeviceArray<int32_t> tok(ix.token), start(ix.start), pos(ix.pos);
  std::vector<float> first;
  for (int rep = 0; rep < 2; ++rep) {
    DeviceArray<float> dtab_out(dtab0);
    cuda::embedding_backward(nullptr, ddy.get(), tok.get(), start.get(), pos.get(), int(ix.token.size()),
                             dtab_out.get(), C);
    const auto got = dtab_out.download();
    EXPECT_LT(rel_err(got, dtab_ref), 1e-6);
    if (rep == 0) first = got;
    else EXPECT_EQ(0, std::memcmp(first.data(), got.data(), got.size() * sizeof(float)));
  }
}

TEST(EmbeddingCuda, OddSizesMatchCpu) {
  GFWA_SKIP_WITHOUT_GPU();
  run_case(37, 29, 24, 11);   // vectorised path (C % 8 == 0)
  run_case(300, 101, 45, 12); // scalar path
  run_case(1, 5, 8, 13);
}

TEST(EmbeddingCuda, TokenIndexRejectsOutOfVocab) {
  const std::vector<int32_t> ids = {1, 2, 9};
  EXPECT_THROW(cuda::make_token_index(ids.data(), 3, 9), std::out_of_range);
  const std::vector<int32_t> neg = {-1};
  EXPECT_THROW(cuda::make_token_index(neg.data(), 1, 9), std::out_of_range);
}

TEST(EmbeddingCuda, TokenIndexGroupsPositionsInOrder) {
  const std::vector<int32_t> ids = {4, 1, 4, 0, 1, 4};
  const cuda::TokenIndex ix = cuda::make_token_index(ids.data(), 6, 5);
  EXPECT_EQ(ix.token, (std::vector<int32_t>{0, 1, 4}));
  EXPECT_EQ(ix.start, (std::vector<int32_t>{0, 1, 3, 6}));
  EXPECT_EQ(ix.pos, (std::vector<int32_t>{3, 1, 4, 0, 2, 5}));
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
