#include "kernels/swiglu.cuh"

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + __expf(-x)); }

__global__ void swiglu_forward_kernel(const __nv_bfloat16* __restrict__ u, __nv_bfloat16* __restrict__ g, int N,
                                      int F) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * F) return;
  const size_t n = i / F, j = i % F;
  const float a = to_f(u[n * 2 * F + j]), b = to_f(u[n * 2 * F + F + j]);
  g[i] = to_bf(a * sigmoidf_(a) * b);
}

__global__ void swiglu_backward_kernel(const __nv_bfloat16* __restrict__ dg, __nv_bfloat16* __restrict__ u, int N,
                                       int F) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * F) return;
  const size_t n = i / F, j = i % F;
  const float a = to_f(u[n * 2 * F + j]), b = to_f(u[n * 2 * F + F + j]), d = to_f(dg[i]);
  const float sg = sigmoidf_(a), silu = a * sg;
  u[n * 2 * F + j] = to_bf(d * b * sg * (1.0f + a * (1.0f - sg)));
  u[n * 2 * F + F + j] = to_bf(d * silu);
}

}  // namespace

void swiglu_forward(cudaStream_t s, const __nv_bfloat16* u, __nv_bfloat16* g, int N, int F) {
  if (N == 0) return;
  swiglu_forward_kernel<<<ceil_div(size_t(N) * F, 256), 256, 0, s>>>(u, g, N, F);
  CUDA_CHECK_LAUNCH();
}

void swiglu_backward(cudaStream_t s, const __nv_bfloat16* dg, __nv_bfloat16* u, int N, int F) {
  if (N == 0) return;
  swiglu_backward_kernel<<<ceil_div(size_t(N) * F, 256), 256, 0, s>>>(dg, u, N, F);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
