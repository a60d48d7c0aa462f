#include "kernels/reduce.cuh"

#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kMaxPartialBlocks = 512;

__global__ void colsum_partials_kernel(const float* __restrict__ in, int N, int C, int rows_per_block,
                                       float* __restrict__ partial) {
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = 0.0f;
    for (int r = r0; r < r1; ++r) acc += in[size_t(r) * C + c];
    partial[size_t(blockIdx.x) * C + c] = acc;
  }
}

// A block per 32 columns: warp w adds partial rows w, w + 16, w + 32, ... (many independent loads
// in flight per thread, on as many SMs as there are column tiles), then the 16 warp sums are added in
// warp order. One thread per column walking all G rows alone was bound by L2 latency (~25 us a call).
constexpr int kFinishCols = 32, kFinishWarps = 16;

__global__ void __launch_bounds__(kFinishCols * kFinishWarps) finish_partials_kernel(const float* __restrict__ partial,
                                                                                   int G, int C,
                                                                                   float* __restrict__ dst,
                                                                                   bool accumulate) {
  __shared__ float sums[kFinishWarps][kFinishCols];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, c = blockIdx.x * kFinishCols + lane;
  float acc = 0.0f;
  if (c < C) {
#pragma unroll 8
    for (int g = warp; g < G; g += kFinishWarps) acc += partial[size_t(g) * C + c];
  }
  sums[warp][lane] = acc;
  __syncthreads();
  if (warp != 0 || c >= C) return;
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kFinishWarps; ++w) total += sums[w][lane];
  dst[c] = accumulate ? dst[c] + total : total;
}

__global__ void broadcast_rows_kernel(const float* __restrict__ bias, int N, int C, float* __restrict__ out) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < size_t(N) * C) out[i] = bias[i % C];
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ in, __nv_bfloat16* __restrict__ out, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = to_bf(in[i]);
}

__global__ void bf16_to_f32_kernel(const __nv_bfloat16* __restrict__ in, float* __restrict__ out, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = to_f(in[i]);
}

int grid_for(size_t n) { return int(std::min<size_t>((n + 255) / 256, 8192)); }

}  // namespace

int partial_blocks(int N) { return std::max(1, std::min(N, kMaxPartialBlocks)); }

void colsum_partials(cudaStream_t s, const float* in, int N, int C, float* partial) {
  const int G = partial_blocks(N), rpb = ceil_div(N, G);
  colsum_partials_kernel<<<G, std::min(256, ((C + 31) / 32) * 32), 0, s>>>(in, N, C, rpb, partial);
  CUDA_CHECK_LAUNCH();
}

void finish_partials(cudaStream_t s, const float* partial, int G, int C, float* dst, bool accumulate) {
  if (C == 0) return;
  finish_partials_kernel<<<ceil_div(C, kFinishCols), kFinishCols * kFinishWarps, 0, s>>>(partial, G, C, dst,
                                                                                         accumulate);
  CUDA_CHECK_LAUNCH();
}

void broadcast_rows(cudaStream_t s, const float* bias, int N, int C, float* out) {
  const size_t n = size_t(N) * C;
  if (n == 0) return;
  broadcast_rows_kernel<<<ceil_div(n, 256), 256, 0, s>>>(bias, N, C, out);
  CUDA_CHECK_LAUNCH();
}

void f32_to_bf16(cudaStream_t s, const float* in, __nv_bfloat16* out, size_t n) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<grid_for(n), 256, 0, s>>>(in, out, n);
  CUDA_CHECK_LAUNCH();
}

void bf16_to_f32(cudaStream_t s, const __nv_bfloat16* in, float* out, size_t n) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<grid_for(n), 256, 0, s>>>(in, out, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
