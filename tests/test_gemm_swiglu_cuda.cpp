// The w13 GEMM with SwiGLU in its epilogue (gemm_swiglu.cuh, sm_90a): u against the CPU matmul twin (fp32, same bf16
// inputs), g bit for bit swiglu_forward of the kernel's own u, rows past N untouched, two calls bit-identical; the
// shape rules and the argument checks (these two without a GPU).
#ifdef GFWA_WITH_CUDA
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cuda_layer_test_util.h"
#include "kernels/gemm_swiglu.cuh"
#include "kernels/matmul_cpu.h"
#include "kernels/swiglu.cuh"

namespace gfwa {
namespace {

using namespace gfwa::test;
using bf16 = __nv_bfloat16;

constexpr int kSentinelRows = 3;  // rows after N in u and g that the kernel must not write

struct Shape {
  int N, d, F;
};

class GemmSwigluCuda : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmSwigluCuda, MatchesCpuMatmulAndSwigluForwardBitwise) {
  GFWA_SKIP_WITHOUT_GPU();
  if (!cuda_device_is_sm90()) GTEST_SKIP() << "the sm_90a GEMM needs a compute capability 9.0 GPU";
  const auto [N, d, F] = GetParam();
  ASSERT_TRUE(cuda::gemm_swiglu_shape_ok(N, d, F));
  const uint64_t seed = 77 + uint64_t(N) * 13 + d * 7 + F;
  const auto x = random_bf16_values(size_t(N) * d, seed);
  const auto w = random_bf16_values(size_t(2) * F * d, seed + 1, 1.0 / std::sqrt(double(d)));  // u ~ N(0, 1)
  std::vector<float> u_ref(size_t(N) * 2 * F);
  cpu::matmul_forward(u_ref.data(), x.data(), w.data(), static_cast<const float*>(nullptr), N, d, 2 * F);

  DeviceArray<bf16> dx(to_bf16(x)), dw(to_bf16(w));
  const size_t u_elems = size_t(N + kSentinelRows) * 2 * F, g_elems = size_t(N + kSentinelRows) * F;
  DeviceArray<bf16> u(u_elems), g(g_elems), u2(u_elems), g2(g_elems), g_ref(size_t(N) * F);
  for (DeviceArray<bf16>* a : {&u, &g, &u2, &g2}) a->poison();
  cuda::gemm_swiglu_forward(nullptr, dx.get(), dw.get(), u.get(), g.get(), N, d, F);
  cuda::gemm_swiglu_forward(nullptr, dx.get(), dw.get(), u2.get(), g2.get(), N, d, F);
  cuda::swiglu_forward(nullptr, u.get(), g_ref.get(), N, F);  // swiglu of the kernel's own u
  const auto hu = u.download(), hg = g.download();

  const std::vector<bf16> u_rows(hu.begin(), hu.begin() + size_t(N) * 2 * F);
  EXPECT_LT(rel_err(to_double(u_rows), u_ref), 4e-3);  // one bf16 rounding, as MatmulCuda's bf16 outputs
  const auto g_bits = bits(hg), gr_bits = bits(g_ref.download());
  size_t g_diff = 0;
  for (size_t i = 0; i < gr_bits.size(); ++i) g_diff += g_bits[i] != gr_bits[i];
  EXPECT_EQ(g_diff, 0u) << "elements of g that differ from swiglu_forward(u)";

  const auto u_bits = bits(hu);
  size_t touched = 0;
  for (size_t i = size_t(N) * 2 * F; i < u_elems; ++i) touched += u_bits[i] != 0xFFFF;
  for (size_t i = size_t(N) * F; i < g_elems; ++i) touched += g_bits[i] != 0xFFFF;
  EXPECT_EQ(touched, 0u) << "elements written in the sentinel rows after row N";

  EXPECT_TRUE(bits(u2.download()) == u_bits) << "u differs between two calls";
  EXPECT_TRUE(bits(g2.download()) == g_bits) << "g differs between two calls";
}

// Every N, d and F of the list at least once (d below kGemmSwigluMinD too: the backend does not pick the kernel
// there, but the kernel must stay correct): one row; rows short of and just past one 128-row tile; one 64-column
// k-slab (the 3-stage ring wraps within a tile's slabs and across tiles); more tiles than SMs (the
// persistent loop, N 4173 with F 3072: 792 tiles); N 8269 at d 1024 spans two groups of the tile order (50 m-tiles a
// group at a 50 MB L2), the second one partial.
INSTANTIATE_TEST_SUITE_P(Shapes, GemmSwigluCuda,
                         ::testing::Values(Shape{1, 64, 128}, Shape{127, 768, 384}, Shape{129, 1024, 128},
                                           Shape{1000, 64, 3072}, Shape{1000, 1024, 384}, Shape{4173, 64, 3072},
                                           Shape{4173, 768, 3072}, Shape{8269, 1024, 384}));

TEST(GemmSwigluShape, ShapeRulesAndEligibility) {
  for (const Shape& s : {Shape{1, 64, 128}, Shape{32768, 768, 3072}, Shape{32768, 2048, 8192}, Shape{77, 1024, 384}})
    EXPECT_TRUE(cuda::gemm_swiglu_shape_ok(s.N, s.d, s.F)) << s.N << " " << s.d << " " << s.F;
  // F % 128 (the small test models' 200), d % 64, no rows.
  for (const Shape& s : {Shape{100, 128, 200}, Shape{100, 128, 64}, Shape{100, 96, 128}, Shape{100, 32, 128},
                         Shape{0, 64, 128}, Shape{100, 0, 128}, Shape{100, 64, 0}})
    EXPECT_FALSE(cuda::gemm_swiglu_shape_ok(s.N, s.d, s.F)) << s.N << " " << s.d << " " << s.F;
  if (!cuda_device_present()) return;
  // The backend's choice: the kernel's shapes from d 768 up (measured faster than cuBLAS + swiglu_forward), sm90 only.
  EXPECT_EQ(cuda::gemm_swiglu_eligible(100, cuda::kGemmSwigluMinD, 256), cuda_device_is_sm90());
  EXPECT_EQ(cuda::gemm_swiglu_eligible(32768, 4096, 16384), cuda_device_is_sm90());
  EXPECT_FALSE(cuda::gemm_swiglu_eligible(100, cuda::kGemmSwigluMinD - 64, 256));  // a valid shape, below the bound
  EXPECT_EQ(cuda::gemm_swiglu_eligible(32768, 768, 3072), cuda_device_is_sm90());    // 124m
  EXPECT_FALSE(cuda::gemm_swiglu_eligible(100, 2048, 200));
}

// The checks run before anything touches the device, so these need no GPU (the pointers are never dereferenced).
TEST(GemmSwigluShape, RejectsBadShapesAndPointersNamingThem) {
  alignas(16) static bf16 buf[64];
  bf16* ok = buf;
  bf16* odd = buf + 1;  // 2-byte aligned only
  auto message = [&](const bf16* x, const bf16* w, bf16* u, bf16* g, int N, int d, int F) {
    try {
      cuda::gemm_swiglu_forward(nullptr, x, w, u, g, N, d, F);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no invalid_argument");
  };
  EXPECT_NE(message(ok, ok, ok, ok, 10, 128, 200).find("F 200"), std::string::npos);
  EXPECT_NE(message(ok, ok, ok, ok, 10, 96, 128).find("d 96"), std::string::npos);
  EXPECT_NE(message(odd, ok, ok, ok, 10, 128, 128).find("x is not 16-byte aligned"), std::string::npos);
  EXPECT_NE(message(ok, odd, ok, ok, 10, 128, 128).find("w13 is not 16-byte aligned"), std::string::npos);
  EXPECT_NE(message(ok, ok, odd, ok, 10, 128, 128).find("u is not 16-byte aligned"), std::string::npos);
  EXPECT_NE(message(ok, ok, ok, nullptr, 10, 128, 128).find("g is null"), std::string::npos);
}

}  // namespace
}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
