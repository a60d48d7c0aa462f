// Device helpers shared by the hand-written kernels: warp/block reductions, bf16 conversions and
// packing, the resident grid of a kernel. Included only from .cu files.
#pragma once
#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/device_facts.h"

namespace gfwa::cuda {

__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ __nv_bfloat16 to_bf(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
// `scratch` holds 32 floats; the trailing barrier lets the caller reuse it at once.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nw ? scratch[lane] : 0.0f;
  r = warp_sum(r);
  __syncthreads();
  return r;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nw ? scratch[lane] : -INFINITY;
  r = warp_max(r);
  __syncthreads();
  return r;
}

// Two sums over the block, for kernels whose block reduces once per row of a range of rows: each warp's pair
// goes to the row's parity slot (slots: [2][32]) and all warps' pairs are added in warp order after one
// barrier. No second barrier is needed: a slot is rewritten two rows later, after every warp has passed the
// next row's barrier, so after every warp has read it.
// With w0, nw: the sums over warps w0 .. w0 + nw - 1 only (a block of several row groups; every thread of the
// block still takes part in the barrier).
__device__ __forceinline__ float2 block_sum2_alternating(float a, float b, float2 (*slots)[32], int parity,
                                                         int w0 = 0, int nw = 0) {
  a = warp_sum(a);
  b = warp_sum(b);
  if (nw == 0) nw = blockDim.x >> 5;
  if ((threadIdx.x & 31) == 0) slots[parity][threadIdx.x >> 5] = make_float2(a, b);
  __syncthreads();
  float2 s = make_float2(0.0f, 0.0f);
  for (int w = w0; w < w0 + nw; ++w) {
    s.x += slots[parity][w].x;
    s.y += slots[parity][w].y;
  }
  return s;
}

// 8 bf16 values in 16 bytes, to and from fp32.
__device__ __forceinline__ void unpack8(const uint4& u, float* f) {
  const __nv_bfloat16* h = reinterpret_cast<const __nv_bfloat16*>(&u);
#pragma unroll
  for (int e = 0; e < 8; ++e) f[e] = to_f(h[e]);
}

__device__ __forceinline__ uint4 pack8(const float* f) {
  uint4 u;
  __nv_bfloat16* h = reinterpret_cast<__nv_bfloat16*>(&u);
#pragma unroll
  for (int e = 0; e < 8; ++e) h[e] = to_bf(f[e]);
  return u;
}

inline int ceil_div(long long a, long long b) { return int((a + b - 1) / b); }

// Blocks of `threads` threads of `kernel` that the current device holds at once: the grid of a kernel whose
// blocks each walk a range of rows (one wave, no tail), when a row's result does not depend on its block.
// Asked once per (kernel, threads, device) and kept: the callers launch per layer, and decode per token.
inline int resident_blocks(const void* kernel, int threads) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, int>, int> known;
  const DeviceFacts f = current_device_facts();
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(kernel, threads, f.device);
  const auto it = known.find(key);
  if (it != known.end()) return it->second;
  int per_sm = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
  return known[key] = std::max(1, f.sms * per_sm);
}

template <typename Kernel>
int resident_blocks(Kernel* kernel, int threads) {
  return resident_blocks(reinterpret_cast<const void*>(kernel), threads);
}

}  // namespace gfwa::cuda
