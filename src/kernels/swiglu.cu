#include "kernels/swiglu.cuh"

#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/swiglu_math.cuh"

namespace gfwa::cuda {
namespace {

__global__ void swiglu_forward_kernel(const __nv_bfloat16* __restrict__ u, __nv_bfloat16* __restrict__ g, int N,
                                      int F) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * F) return;
  const size_t n = i / F, j = i % F;
  const float a = to_f(u[n * 2 * F + j]), b = to_f(u[n * 2 * F + F + j]);
  g[i] = to_bf(swiglu_value(a, b));
}

__global__ void swiglu_backward_kernel(const __nv_bfloat16* __restrict__ dg, __nv_bfloat16* __restrict__ u, int N,
                                       int F) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * F) return;
  const size_t n = i / F, j = i % F;
  float da, db;
  swiglu_grad(to_f(u[n * 2 * F + j]), to_f(u[n * 2 * F + F + j]), to_f(dg[i]), da, db);
  u[n * 2 * F + j] = to_bf(da);
  u[n * 2 * F + F + j] = to_bf(db);
}

// 8 features per thread with 16-byte accesses (F % 8 == 0); rows over grid.y, no 64-bit division.
__global__ void swiglu_forward_vec(const __nv_bfloat16* __restrict__ u, __nv_bfloat16* __restrict__ g, int N, int F) {
  const int j8 = blockIdx.x * blockDim.x + threadIdx.x;
  if (j8 * 8 >= F) return;
  for (int n = blockIdx.y; n < N; n += gridDim.y) {
    const uint4 av = *reinterpret_cast<const uint4*>(u + size_t(n) * 2 * F + j8 * 8);
    const uint4 bv = *reinterpret_cast<const uint4*>(u + size_t(n) * 2 * F + F + j8 * 8);
    const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&av);
    const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&bv);
    uint4 out;
    __nv_bfloat162* o2 = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 a = __bfloat1622float2(a2[e]), b = __bfloat1622float2(b2[e]);
      o2[e] = __floats2bfloat162_rn(swiglu_value(a.x, b.x), swiglu_value(a.y, b.y));
    }
    *reinterpret_cast<uint4*>(g + size_t(n) * F + j8 * 8) = out;
  }
}

__global__ void swiglu_backward_vec(const __nv_bfloat16* __restrict__ dg, __nv_bfloat16* __restrict__ u, int N, int F) {
  const int j8 = blockIdx.x * blockDim.x + threadIdx.x;
  if (j8 * 8 >= F) return;
  for (int n = blockIdx.y; n < N; n += gridDim.y) {
    uint4* ap = reinterpret_cast<uint4*>(u + size_t(n) * 2 * F + j8 * 8);
    uint4* bp = reinterpret_cast<uint4*>(u + size_t(n) * 2 * F + F + j8 * 8);
    const uint4 av = *ap, bv = *bp, dv = *reinterpret_cast<const uint4*>(dg + size_t(n) * F + j8 * 8);
    uint4 da, db;
    swiglu_grad8(av, bv, dv, da, db);
    *ap = da;
    *bp = db;
  }
}

dim3 vec_grid(int N, int F) { return dim3(ceil_div(F / 8, 128), std::min(N, 65535)); }

}  // namespace

void swiglu_forward(cudaStream_t s, const __nv_bfloat16* u, __nv_bfloat16* g, int N, int F) {
  if (N == 0) return;
  if (F % 8 == 0)
    swiglu_forward_vec<<<vec_grid(N, F), 128, 0, s>>>(u, g, N, F);
  else
    swiglu_forward_kernel<<<ceil_div(size_t(N) * F, 256), 256, 0, s>>>(u, g, N, F);
  CUDA_CHECK_LAUNCH();
}

void swiglu_backward(cudaStream_t s, const __nv_bfloat16* dg, __nv_bfloat16* u, int N, int F) {
  if (N == 0) return;
  if (F % 8 == 0)
    swiglu_backward_vec<<<vec_grid(N, F), 128, 0, s>>>(dg, u, N, F);
  else
    swiglu_backward_kernel<<<ceil_div(size_t(N) * F, 256), 256, 0, s>>>(dg, u, N, F);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
