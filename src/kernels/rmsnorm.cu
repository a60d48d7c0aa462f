#include "kernels/rmsnorm.cuh"

#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/reduce.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kCpt = 4;  // channels per thread in the backward: d <= 1024 * kCpt

// One warp per row: the row is read twice (the second time from L1), written once.
__global__ void rmsnorm_forward_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                       __nv_bfloat16* __restrict__ y, float* __restrict__ rstd, int N, int d,
                                       float eps) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= N) return;
  const __nv_bfloat16* xr = x + size_t(row) * d;
  float ss = 0.0f;
  for (int c = lane; c < d; c += 32) {
    const float v = to_f(xr[c]);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = rsqrtf(ss / d + eps);
  __nv_bfloat16* yr = y + size_t(row) * d;
  for (int c = lane; c < d; c += 32) yr[c] = to_bf(to_f(xr[c]) * r * to_f(w[c]));
  if (lane == 0) rstd[row] = r;
}

// A block owns a fixed range of rows and, per thread, up to kCpt channels: it writes the input
// gradient of each row and one partial row of the weight gradient (deterministic order).
__global__ void rmsnorm_backward_kernel(const __nv_bfloat16* __restrict__ dy, const __nv_bfloat16* __restrict__ x,
                                        const __nv_bfloat16* __restrict__ w, const float* __restrict__ rstd,
                                        __nv_bfloat16* __restrict__ dres, bool accumulate,
                                        float* __restrict__ dw_partial, int N, int d, int rows_per_block) {
  __shared__ float scratch[32];
  float wv[kCpt], dw[kCpt];
#pragma unroll
  for (int j = 0; j < kCpt; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    wv[j] = c < d ? to_f(w[c]) : 0.0f;
    dw[j] = 0.0f;
  }
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  for (int row = r0; row < r1; ++row) {
    const float r = rstd[row];
    const size_t base = size_t(row) * d;
    float xh[kCpt], g[kCpt], dot = 0.0f;
#pragma unroll
    for (int j = 0; j < kCpt; ++j) {
      const int c = threadIdx.x + j * blockDim.x;
      xh[j] = 0.0f;
      g[j] = 0.0f;
      if (c < d) {
        const float gy = to_f(dy[base + c]);
        xh[j] = to_f(x[base + c]) * r;
        g[j] = gy * wv[j];
        dot += g[j] * xh[j];
        dw[j] += gy * xh[j];
      }
    }
    dot = block_sum(dot, scratch) / d;
#pragma unroll
    for (int j = 0; j < kCpt; ++j) {
      const int c = threadIdx.x + j * blockDim.x;
      if (c < d) {
        const float dx = r * (g[j] - xh[j] * dot);
        dres[base + c] = to_bf(accumulate ? to_f(dres[base + c]) + dx : dx);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kCpt; ++j) {
    const int c = threadIdx.x + j * blockDim.x;
    if (c < d) dw_partial[size_t(blockIdx.x) * d + c] = dw[j];
  }
}

// The common case (d % 8 == 0, d <= 256 * K): one warp per row, each lane owning K groups of 8
// channels read with 16-byte accesses; no block barrier per row. A row's dy, x and (when
// accumulating) dres are all loaded before its reduction, so each row costs one trip to memory; the
// loads and the weight stay packed in registers and the store pass recomputes x-hat and dy*w from
// them (up to d = 768 within 128 registers: two blocks per SM; d = 1024 needs ~170, one block). Warps keep their weight-gradient partials in
// registers and merge them in shared memory, in warp order, at the end.
constexpr int kWarps = 8;

template <int K>
__global__ void __launch_bounds__(kWarps * 32, K <= 3 ? 2 : 1) rmsnorm_backward_warp(
    const __nv_bfloat16* __restrict__ dy, const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
    const float* __restrict__ rstd, __nv_bfloat16* __restrict__ dres, bool accumulate, float* __restrict__ dw_partial,
    int N, int d, int rows_per_block) {
  extern __shared__ float red[];  // [kWarps][d]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint4 wv[K];  // the weight, packed
  float dw[K][8];
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int c = (lane + 32 * k) * 8;
    wv[k] = c < d ? *reinterpret_cast<const uint4*>(w + c) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int e = 0; e < 8; ++e) dw[k][e] = 0.0f;
  }
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  for (int row = r0 + warp; row < r1; row += kWarps) {
    const float r = rstd[row];
    const size_t base = size_t(row) * d;
    uint4 dv[K], xv[K], pv[K];
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int c = (lane + 32 * k) * 8;
      dv[k] = xv[k] = pv[k] = make_uint4(0, 0, 0, 0);
      if (c >= d) continue;
      dv[k] = *reinterpret_cast<const uint4*>(dy + base + c);
      xv[k] = *reinterpret_cast<const uint4*>(x + base + c);
      if (accumulate) pv[k] = *reinterpret_cast<const uint4*>(dres + base + c);
    }
    float dot = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const __nv_bfloat16* dh = reinterpret_cast<const __nv_bfloat16*>(&dv[k]);
      const __nv_bfloat16* xh = reinterpret_cast<const __nv_bfloat16*>(&xv[k]);
      const __nv_bfloat16* wh = reinterpret_cast<const __nv_bfloat16*>(&wv[k]);
#pragma unroll
      for (int e = 0; e < 8; ++e) {  // channels past d hold zeros and add nothing
        const float gy = to_f(dh[e]), xhat = to_f(xh[e]) * r;
        dot += gy * to_f(wh[e]) * xhat;
        dw[k][e] += gy * xhat;
      }
    }
    dot = warp_sum(dot) / d;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int c = (lane + 32 * k) * 8;
      if (c >= d) continue;
      const __nv_bfloat16* dh = reinterpret_cast<const __nv_bfloat16*>(&dv[k]);
      const __nv_bfloat16* xh = reinterpret_cast<const __nv_bfloat16*>(&xv[k]);
      const __nv_bfloat16* wh = reinterpret_cast<const __nv_bfloat16*>(&wv[k]);
      const __nv_bfloat16* ph = reinterpret_cast<const __nv_bfloat16*>(&pv[k]);
      uint4 out;
      __nv_bfloat16* oh = reinterpret_cast<__nv_bfloat16*>(&out);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float dx = r * (to_f(dh[e]) * to_f(wh[e]) - to_f(xh[e]) * r * dot);
        oh[e] = to_bf(accumulate ? to_f(ph[e]) + dx : dx);
      }
      *reinterpret_cast<uint4*>(dres + base + c) = out;
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int c = (lane + 32 * k) * 8;
    if (c >= d) continue;
#pragma unroll
    for (int e = 0; e < 8; ++e) red[warp * d + c + e] = dw[k][e];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.0f;
    for (int wi = 0; wi < kWarps; ++wi) acc += red[wi * d + c];
    dw_partial[size_t(blockIdx.x) * d + c] = acc;
  }
}

template <int K>
void launch_backward_warp(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* x, const __nv_bfloat16* w,
                          const float* rstd, __nv_bfloat16* dres, bool accumulate, float* dw_partial, int N, int d,
                          int G) {
  const size_t smem = size_t(kWarps) * d * sizeof(float);
  if (smem > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(rmsnorm_backward_warp<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  rmsnorm_backward_warp<K><<<G, kWarps * 32, smem, s>>>(dy, x, w, rstd, dres, accumulate, dw_partial, N, d,
                                                        ceil_div(N, G));
}

}  // namespace

void rmsnorm_forward(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, float* rstd,
                     int N, int d, float eps) {
  if (N == 0) return;
  rmsnorm_forward_kernel<<<ceil_div(N, 8), 256, 0, s>>>(x, w, y, rstd, N, d, eps);
  CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* x, const __nv_bfloat16* w,
                      const float* rstd, __nv_bfloat16* dres, bool accumulate, float* dw_partial, int N, int d) {
  if (d > kRmsnormMaxDim) throw std::invalid_argument("rmsnorm_backward: d = " + std::to_string(d) + " > 4096");
  if (N == 0) return;
  const int G = partial_blocks(N);
  if (d % 8 == 0 && d <= 1024) {
    switch (ceil_div(d, 256)) {
      case 1: launch_backward_warp<1>(s, dy, x, w, rstd, dres, accumulate, dw_partial, N, d, G); break;
      case 2: launch_backward_warp<2>(s, dy, x, w, rstd, dres, accumulate, dw_partial, N, d, G); break;
      case 3: launch_backward_warp<3>(s, dy, x, w, rstd, dres, accumulate, dw_partial, N, d, G); break;
      default: launch_backward_warp<4>(s, dy, x, w, rstd, dres, accumulate, dw_partial, N, d, G); break;
    }
    CUDA_CHECK_LAUNCH();
    return;
  }
  const int threads = ((ceil_div(d, kCpt) + 31) / 32) * 32;
  rmsnorm_backward_kernel<<<G, threads, 0, s>>>(dy, x, w, rstd, dres, accumulate, dw_partial, N, d, ceil_div(N, G));
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
