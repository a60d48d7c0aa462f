#include "kernels/nsa_gates.cuh"

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

// Thread per (n, h): reads the three adjacent pre-activations, writes one gate of each branch.
// r = n * H + h; its three pre-activations start at column 3h of row n.
__device__ __forceinline__ int64_t pre_index(int64_t r, int H, int ld) { return (r / H) * ld + (r % H) * 3; }

__global__ void nsa_gates_forward_kernel(const float* __restrict__ pre, int ld, int H, int64_t NH,
                                         float* __restrict__ g) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= NH) return;
  const float* p = pre + pre_index(r, H, ld);
#pragma unroll
  for (int b = 0; b < 3; ++b) g[b * NH + r] = 1.0f / (1.0f + __expf(-p[b]));
}

__global__ void nsa_gates_backward_kernel(const float* __restrict__ g, const float* __restrict__ dg, int H,
                                          int64_t NH, __nv_bfloat16* __restrict__ dpre, int ld) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= NH) return;
  __nv_bfloat16* d = dpre + pre_index(r, H, ld);
#pragma unroll
  for (int b = 0; b < 3; ++b) {
    const float s = g[b * NH + r];
    d[b] = to_bf(dg[b * NH + r] * s * (1.0f - s));
  }
}

void check_ld(int ld, int H, const char* who) {
  if (ld < 3 * H)
    throw std::invalid_argument(std::string(who) + ": rows of " + std::to_string(ld) + " < 3 H = " +
                                std::to_string(3 * H) + " pre-activations");
}

unsigned blocks_for(int64_t n) { return unsigned((n + 255) / 256); }

}  // namespace

void nsa_gates_forward(cudaStream_t s, const float* pre, int ld, int N, int H, float* g) {
  check_ld(ld, H, "nsa_gates_forward");
  const int64_t NH = int64_t(N) * H;
  if (NH == 0) return;
  nsa_gates_forward_kernel<<<blocks_for(NH), 256, 0, s>>>(pre, ld, H, NH, g);
  CUDA_CHECK_LAUNCH();
}

void nsa_gates_backward(cudaStream_t s, const float* g, const float* dg, int N, int H, __nv_bfloat16* dpre, int ld) {
  check_ld(ld, H, "nsa_gates_backward");
  const int64_t NH = int64_t(N) * H;
  if (NH == 0) return;
  nsa_gates_backward_kernel<<<blocks_for(NH), 256, 0, s>>>(g, dg, H, NH, dpre, ld);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
