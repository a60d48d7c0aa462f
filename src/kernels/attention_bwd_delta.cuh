// The backward's first step on both paths (docs/gatedfwa.md section 4): delta_i = rowsum(dO_i * O_i) in fp32, from the
// bf16 o the forward wrote. attn_row_delta is the one computation (a warp per row); the mma.sync path stores it as
// [B, H, T] with attn_delta_kernel, the sm_90a path with its own layout (attention_bwd_sm90_kernel.cuh), same values.
#pragma once
#include <cuda_bf16.h>

#include "kernels/attention_launch.h"
#include "kernels/cuda_check.h"

namespace gfwa::cuda::detail {

// Row (bt = b*T + t, head h): every lane returns the sum.
template <int D>
__device__ __forceinline__ float attn_row_delta(const AttnBwdParams& p, int64_t bt, int h, int lane) {
  const __nv_bfloat16* o = p.o + bt * p.o_row_stride + h * D;
  const __nv_bfloat16* dout = p.dout + bt * p.dout_row_stride + h * D;
  float acc = 0.f;
#pragma unroll
  for (int d = 2 * lane; d < D; d += 64) {
    const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(o + d));
    const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dout + d));
    acc += x.x * y.x + x.y * y.y;
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  return acc;
}

template <int D>
__global__ void __launch_bounds__(256) attn_delta_kernel(const AttnBwdParams p, float* delta) {
  const int64_t row = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= int64_t(p.B) * p.T * p.H) return;
  const int h = int(row % p.H);
  const int64_t bt = row / p.H;
  const int t = int(bt % p.T), b = int(bt / p.T);
  const float acc = attn_row_delta<D>(p, bt, h, lane);
  if (lane == 0) delta[(int64_t(b) * p.H + h) * p.T + t] = acc;
}

template <int D>
void launch_attn_delta(const AttnBwdParams& p, float* delta, cudaStream_t stream) {
  const int64_t rows = int64_t(p.B) * p.T * p.H;
  attn_delta_kernel<D><<<unsigned((rows + 7) / 8), 256, 0, stream>>>(p, delta);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
