#include "kernels/nsa_gates.cuh"

#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

// Thread per (n, h): reads the three adjacent pre-activations, writes one gate of each branch.
__global__ void nsa_gates_forward_kernel(const float* __restrict__ pre, int64_t NH, float* __restrict__ g) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= NH) return;
#pragma unroll
  for (int b = 0; b < 3; ++b) g[b * NH + r] = 1.0f / (1.0f + __expf(-pre[r * 3 + b]));
}

__global__ void nsa_gates_backward_kernel(const float* __restrict__ g, const float* __restrict__ dg, int64_t NH,
                                          __nv_bfloat16* __restrict__ dpre) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= NH) return;
#pragma unroll
  for (int b = 0; b < 3; ++b) {
    const float s = g[b * NH + r];
    dpre[r * 3 + b] = to_bf(dg[b * NH + r] * s * (1.0f - s));
  }
}

unsigned blocks_for(int64_t n) { return unsigned((n + 255) / 256); }

}  // namespace

void nsa_gates_forward(cudaStream_t s, const float* pre, int N, int H, float* g) {
  const int64_t NH = int64_t(N) * H;
  if (NH == 0) return;
  nsa_gates_forward_kernel<<<blocks_for(NH), 256, 0, s>>>(pre, NH, g);
  CUDA_CHECK_LAUNCH();
}

void nsa_gates_backward(cudaStream_t s, const float* g, const float* dg, int N, int H, __nv_bfloat16* dpre) {
  const int64_t NH = int64_t(N) * H;
  if (NH == 0) return;
  nsa_gates_backward_kernel<<<blocks_for(NH), 256, 0, s>>>(g, dg, NH, dpre);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
