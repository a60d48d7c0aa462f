// w2's dX GEMM with the SwiGLU backward in its epilogue (gemm_swiglu_backward, gemm_swiglu.cuh, sm_90a): du against
// a CPU reference (dg from the CPU matmul twin, rounded to bf16, then swiglu_cpu's backward in double); du bit for bit
// swiglu_backward (the GPU kernel) when dg is exact (small integers: the same bf16 dg whatever the summation order);
// rows past N untouched; two calls bit-identical; the argument checks (without a GPU).
#ifdef GFWA_WITH_CUDA
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/gemm_swiglu.cuh"
#include "kernels/matmul_cpu.h"
#include "kernels/swiglu.cuh"
#include "kernels/swiglu_cpu.h"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

constexpr int kSentinelRows = 3;  // rows of u after N that the kernel must not write
constexpr uint16_t kSentinel = 0xFFFF;

struct Shape {
  int N, d, F;
};

// u's N rows from `rows` (bf16-exact values), then kSentinelRows rows of sentinel bits.
std::vector<bf16> u_with_sentinels(const std::vector<float>& rows, int N, int F) {
  std::vector<bf16> u(size_t(N + kSentinelRows) * 2 * F);
  for (size_t i = 0; i < rows.size(); ++i) u[i] = to_bf16(rows[i]);
  __nv_bfloat16_raw sentinel;
  sentinel.x = kSentinel;
  for (size_t i = size_t(N) * 2 * F; i < u.size(); ++i) u[i] = sentinel;
  return u;
}

size_t sentinels_touched(const std::vector<bf16>& u, int N, int F) {
  const auto b = bits(u);
  size_t touched = 0;
  for (size_t i = size_t(N) * 2 * F; i < b.size(); ++i) touched += b[i] != kSentinel;
  return touched;
}

// dg = dres W2 (dres [N, d], W2 [d, F]) by the CPU matmul twin in fp32.
std::vector<float> cpu_dg(const std::vector<float>& dres, const std::vector<float>& w2, int N, int d, int F) {
  std::vector<float> dg(size_t(N) * F, 0.0f);
  cpu::matmul_backward(dg.data(), static_cast<float*>(nullptr), static_cast<float*>(nullptr), dres.data(),
                       static_cast<const float*>(nullptr), w2.data(), N, F, d);
  return dg;
}

class GemmSwigluBwdCuda : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmSwigluBwdCuda, MatchesCpuReference) {
  GFWA_SKIP_WITHOUT_GPU();
  if (!cuda_device_is_sm90()) GTEST_SKIP() << "the sm_90a GEMM needs a compute capability 9.0 GPU";
  const auto [N, d, F] = GetParam();
  ASSERT_TRUE(cuda::gemm_swiglu_shape_ok(N, d, F));
  const uint64_t seed = 91 + uint64_t(N) * 13 + d * 7 + F;
  const auto dres = random_bf16_values(size_t(N) * d, seed);
  const auto w2 = random_bf16_values(size_t(d) * F, seed + 1, 1.0 / std::sqrt(double(d)));  // dg ~ N(0, 1)
  const auto u = random_bf16_values(size_t(N) * 2 * F, seed + 2, 2.0);  // a over silu's curved range
  // Reference: dg rounded to bf16 (what the kernel feeds the SwiGLU backward), then swiglu_cpu in double.
  const std::vector<float> dg = cpu_dg(dres, w2, N, d, F);
  const size_t n = size_t(N) * F;
  std::vector<double> a(n), b(n), dgd(n), da_ref(n, 0.0), db_ref(n, 0.0);
  for (int r = 0; r < N; ++r)
    for (int j = 0; j < F; ++j) {
      const size_t i = size_t(r) * F + j;
      a[i] = u[size_t(r) * 2 * F + j];
      b[i] = u[size_t(r) * 2 * F + F + j];
      dgd[i] = from_bf16(to_bf16(dg[i]));
    }
  cpu::swiglu_backward(da_ref.data(), db_ref.data(), dgd.data(), a.data(), b.data(), n);

  DeviceArray<bf16> ddres(to_bf16(dres)), dw2(to_bf16(w2)), du(u_with_sentinels(u, N, F)),
      du2(u_with_sentinels(u, N, F));
  cuda::gemm_swiglu_backward(nullptr, ddres.get(), dw2.get(), du.get(), N, d, F);
  cuda::gemm_swiglu_backward(nullptr, ddres.get(), dw2.get(), du2.get(), N, d, F);
  const auto hu = du.download();

  std::vector<double> da(n), db(n);
  for (int r = 0; r < N; ++r)
    for (int j = 0; j < F; ++j) {
      da[size_t(r) * F + j] = from_bf16(hu[size_t(r) * 2 * F + j]);
      db[size_t(r) * F + j] = from_bf16(hu[size_t(r) * 2 * F + F + j]);
    }
  // One bf16 rounding of da and db; dg may round the other way where the summation orders differ (rare, 1 ulp).
  EXPECT_LT(rel_err(da, da_ref), 4e-3) << "da";
  EXPECT_LT(rel_err(db, db_ref), 4e-3) << "db";
  EXPECT_EQ(sentinels_touched(hu, N, F), 0u) << "elements written in the sentinel rows after row N";
  EXPECT_TRUE(bits(du2.download()) == bits(hu)) << "du differs between two calls";
}

// Every N, d and F of the forward's list: one row; rows short of and just past one 128-row tile; one 64-row k-slab
// (the 4-stage ring wraps within a tile's slabs and across tiles); more tiles than SMs (the persistent loop and the
// ab buffer's reuse, N 4173 with F 3072: 792 tiles); N 8269 at d 1024 spans two groups of the tile order.
INSTANTIATE_TEST_SUITE_P(Shapes, GemmSwigluBwdCuda,
                         ::testing::Values(Shape{1, 64, 128}, Shape{127, 768, 384}, Shape{129, 1024, 128},
                                           Shape{1000, 64, 3072}, Shape{1000, 1024, 384}, Shape{4173, 64, 3072},
                                           Shape{4173, 768, 3072}, Shape{8269, 1024, 384}));

// dres in {-2..2} (mostly 0) and W2 in {-1, 0, 1}: dg is an integer of magnitude <= 256, exact in fp32 whatever the
// summation order and exact in bf16, so the kernel's du must equal swiglu_backward's from that dg bit for bit: the
// same expression (swiglu_math.cuh) on the same bf16 inputs, and every element of dg where it belongs.
class GemmSwigluBwdExact : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmSwigluBwdExact, MatchesSwigluBackwardBitwise) {
  GFWA_SKIP_WITHOUT_GPU();
  if (!cuda_device_is_sm90()) GTEST_SKIP() << "the sm_90a GEMM needs a compute capability 9.0 GPU";
  const auto [N, d, F] = GetParam();
  std::mt19937_64 rng(5 + uint64_t(N) * 3 + d + F);
  std::uniform_int_distribution<int> pick(0, 7);
  constexpr float kDres[8] = {-2, -1, 0, 0, 0, 0, 1, 2};
  std::vector<float> dres(size_t(N) * d), w2(size_t(d) * F);
  for (float& v : dres) v = kDres[pick(rng)];
  for (float& v : w2) v = float(pick(rng) % 3 - 1);
  const std::vector<float> dg = cpu_dg(dres, w2, N, d, F);
  float max_abs = 0.0f;
  size_t nonzero = 0;
  for (float v : dg) {
    ASSERT_EQ(v, std::round(v));
    max_abs = std::max(max_abs, std::fabs(v));
    nonzero += v != 0.0f;
  }
  ASSERT_LE(max_abs, 256.0f) << "dg must be exact in bf16";
  ASSERT_GT(nonzero, dg.size() / 2);
  const auto u = random_bf16_values(size_t(N) * 2 * F, 17 + N, 2.0);

  DeviceArray<bf16> ddres(to_bf16(dres)), dw2(to_bf16(w2)), ddg(to_bf16(dg)), du(u_with_sentinels(u, N, F)),
      du_ref(u_with_sentinels(u, N, F));
  cuda::gemm_swiglu_backward(nullptr, ddres.get(), dw2.get(), du.get(), N, d, F);
  cuda::swiglu_backward(nullptr, ddg.get(), du_ref.get(), N, F);
  const auto got = bits(du.download()), want = bits(du_ref.download());
  size_t diff = 0;
  for (size_t i = 0; i < want.size(); ++i) diff += got[i] != want[i];
  EXPECT_EQ(diff, 0u) << "elements of du (sentinel rows included) that differ from swiglu_backward's";
  // The check can fail: the kernel's du is not u.
  EXPECT_NE(got, bits(u_with_sentinels(u, N, F)));
}

// N off the 128-row tiles, each d and F of the list; 1000 x 3072 at d 768: 192 tiles, more than the SMs.
INSTANTIATE_TEST_SUITE_P(Shapes, GemmSwigluBwdExact,
                         ::testing::Values(Shape{200, 64, 3072}, Shape{333, 768, 384}, Shape{129, 1024, 128},
                                           Shape{1000, 768, 3072}));

// The checks run before anything touches the device, so these need no GPU (the pointers are never dereferenced).
TEST(GemmSwigluBwdShape, RejectsBadShapesAndPointersNamingThem) {
  alignas(16) static bf16 buf[64];
  bf16* ok = buf;
  bf16* odd = buf + 1;  // 2-byte aligned only
  auto message = [&](const bf16* dres, const bf16* w2, bf16* u, int N, int d, int F) {
    try {
      cuda::gemm_swiglu_backward(nullptr, dres, w2, u, N, d, F);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no invalid_argument");
  };
  EXPECT_NE(message(ok, ok, ok, 10, 128, 200).find("gemm_swiglu_backward: shape N 10, d 128, F 200"),
            std::string::npos);
  EXPECT_NE(message(ok, ok, ok, 10, 96, 128).find("d 96"), std::string::npos);
  EXPECT_NE(message(ok, ok, ok, 0, 128, 128).find("N 0"), std::string::npos);
  EXPECT_NE(message(odd, ok, ok, 10, 128, 128).find("gemm_swiglu_backward: dres is not 16-byte aligned"),
            std::string::npos);
  EXPECT_NE(message(ok, odd, ok, 10, 128, 128).find("w2 is not 16-byte aligned"), std::string::npos);
  EXPECT_NE(message(ok, ok, odd, 10, 128, 128).find("u is not 16-byte aligned"), std::string::npos);
  EXPECT_NE(message(nullptr, ok, ok, 10, 128, 128).find("dres is null"), std::string::npos);
  EXPECT_NE(message(ok, ok, nullptr, 10, 128, 128).find("u is null"), std::string::npos);
  // A valid call off compute capability 9.0 is refused before the launch.
  if (cuda_device_present() && !cuda_device_is_sm90()) {
    EXPECT_THROW(cuda::gemm_swiglu_backward(nullptr, ok, ok, ok, 10, 128, 128), std::runtime_error);
  }
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
