#include "kernels/rmsnorm.cuh"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/reduce.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kCpt = 4;  // channels per thread in the generic backward: d <= 1024 * kCpt

// The generic forward (any d): one warp per row; the row is read twice (the second time from L1), written once.
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

// The generic backward (any d): a block owns a fixed range of rows and, per thread, up to kCpt channels: it writes the input
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

// The common case (d % 8 == 0, d <= 4096): a block of one thread per 8 channels of a row (96 threads at
// d 768, 256 at d 2048) walks a range of rows. Thread j owns channels 8j..8j+7 of every row: read and
// written with 16-byte accesses, its norm weights in registers, the next row's loads issued before this
// row's reduction (block_sum2_alternating: one barrier a row). The backward keeps its weight-gradient
// partials in the owning thread's registers and stores them once per block (see backward_row_groups).
constexpr int kMaxGroupThreads = kRmsnormMaxDim / 8;

__host__ __device__ inline int group_threads(int d) { return (d / 8 + 31) / 32 * 32; }

__global__ void __launch_bounds__(kMaxGroupThreads) rmsnorm_forward_groups(
    const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w, __nv_bfloat16* __restrict__ y,
    float* __restrict__ rstd, int N, int d, float eps, int rows_per_block) {
  __shared__ float2 slots[2][32];
  const int c = 8 * threadIdx.x;
  const bool active = c < d;
  float wv[8] = {};
  if (active) unpack8(*reinterpret_cast<const uint4*>(w + c), wv);
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  uint4 next = make_uint4(0, 0, 0, 0);
  if (r0 < r1 && active) next = *reinterpret_cast<const uint4*>(x + size_t(r0) * d + c);
  for (int row = r0; row < r1; ++row) {
    const uint4 cur = next;
    if (row + 1 < r1 && active) next = *reinterpret_cast<const uint4*>(x + size_t(row + 1) * d + c);
    float xv[8], ss = 0.0f;
    unpack8(cur, xv);  // zeros past d
#pragma unroll
    for (int e = 0; e < 8; ++e) ss += xv[e] * xv[e];
    const float r = rsqrtf(block_sum2_alternating(ss, 0.0f, slots, row & 1).x / d + eps);
    if (active) {
#pragma unroll
      for (int e = 0; e < 8; ++e) xv[e] = xv[e] * r * wv[e];
      *reinterpret_cast<uint4*>(y + size_t(row) * d + c) = pack8(xv);
    }
    if (threadIdx.x == 0) rstd[row] = r;
  }
}

// The backward's grid is the fixed partial_blocks(N) (512), so at small d a block takes R rows at a time
// (R groups of group_threads(d) threads, up to kBwdBlockThreads in all: R = 2 at d 768 and 1024, 1 from 1280)
// to keep enough loads in flight; the R groups' weight-gradient partials are added in group order at the end.
// 256 threads at 64 registers let 4 blocks share an SM, so the 512 blocks run in one wave on 132 SMs (384-thread
// blocks, 2 per SM, took two). H200, one call: 124m 1.69 -> 1.60 ms, 350m 2.46 -> 2.20, 774m 4.74 -> 4.14, 1.3b same.
constexpr int kBwdBlockThreads = 256;

int backward_row_groups(int d) { return std::max(1, kBwdBlockThreads / group_threads(d)); }

__global__ void __launch_bounds__(kMaxGroupThreads, 2) rmsnorm_backward_groups(
    const __nv_bfloat16* __restrict__ dy, const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
    const float* __restrict__ rstd, __nv_bfloat16* __restrict__ dres, bool accumulate, float* __restrict__ dw_partial,
    int N, int d, int rows_per_block) {
  __shared__ float2 slots[2][32];
  extern __shared__ float merge[];  // [R - 1][d]: the other groups' partials
  const int gt = group_threads(d), R = blockDim.x / gt, grp = threadIdx.x / gt, c = 8 * (threadIdx.x % gt);
  const bool active = c < d;
  float wv[8] = {}, dw[8] = {};
  if (active) unpack8(*reinterpret_cast<const uint4*>(w + c), wv);
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  uint4 ndy = make_uint4(0, 0, 0, 0), nx = ndy, nres = ndy;
  float nr = 0.0f;
  auto load = [&](int row) {
    const size_t off = size_t(row) * d + c;
    ndy = *reinterpret_cast<const uint4*>(dy + off);
    nx = *reinterpret_cast<const uint4*>(x + off);
    if (accumulate) nres = *reinterpret_cast<const uint4*>(dres + off);
    nr = rstd[row];
  };
  if (r0 + grp < r1 && active) load(r0 + grp);
  for (int first = r0, it = 0; first < r1; first += R, ++it) {  // the same trip count in every group
    const int row = first + grp;
    const bool mine = row < r1 && active;
    const uint4 cdy = ndy, cx = nx, cres = nres;
    const float r = nr;
    ndy = nx = nres = make_uint4(0, 0, 0, 0);
    if (row + R < r1 && active) load(row + R);
    float g[8], xh[8], dot = 0.0f;
    unpack8(cdy, g);  // zeros past d and past the block's rows
    unpack8(cx, xh);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      xh[e] *= r;
      dw[e] += g[e] * xh[e];
      g[e] *= wv[e];
      dot += g[e] * xh[e];
    }
    dot = block_sum2_alternating(dot, 0.0f, slots, it & 1, grp * gt / 32, gt / 32).x / d;
    if (!mine) continue;
    float res[8];
    unpack8(cres, res);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float dx = r * (g[e] - xh[e] * dot);
      g[e] = accumulate ? res[e] + dx : dx;
    }
    *reinterpret_cast<uint4*>(dres + size_t(row) * d + c) = pack8(g);
  }
  if (grp > 0 && active)
#pragma unroll
    for (int e = 0; e < 8; ++e) merge[(grp - 1) * d + c + e] = dw[e];
  __syncthreads();
  if (grp > 0 || !active) return;
  for (int o = 1; o < R; ++o)
#pragma unroll
    for (int e = 0; e < 8; ++e) dw[e] += merge[(o - 1) * d + c + e];
  float4* dst = reinterpret_cast<float4*>(dw_partial + size_t(blockIdx.x) * d + c);
  dst[0] = make_float4(dw[0], dw[1], dw[2], dw[3]);
  dst[1] = make_float4(dw[4], dw[5], dw[6], dw[7]);
}

}  // namespace

void rmsnorm_forward(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, float* rstd,
                     int N, int d, float eps) {
  if (N == 0) return;
  if (d % 8 == 0 && d <= kRmsnormMaxDim) {
    const int threads = group_threads(d), G = std::min(N, resident_blocks(rmsnorm_forward_groups, threads));
    rmsnorm_forward_groups<<<G, threads, 0, s>>>(x, w, y, rstd, N, d, eps, ceil_div(N, G));
  } else {
    rmsnorm_forward_kernel<<<ceil_div(N, 8), 256, 0, s>>>(x, w, y, rstd, N, d, eps);
  }
  CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(cudaStream_t s, const __nv_bfloat16* dy, const __nv_bfloat16* x, const __nv_bfloat16* w,
                      const float* rstd, __nv_bfloat16* dres, bool accumulate, float* dw_partial, int N, int d) {
  if (d > kRmsnormMaxDim) throw std::invalid_argument("rmsnorm_backward: d = " + std::to_string(d) + " > 4096");
  if (N == 0) return;
  const int G = partial_blocks(N);
  if (d % 8 == 0) {
    const int R = backward_row_groups(d);
    rmsnorm_backward_groups<<<G, R * group_threads(d), size_t(R - 1) * d * sizeof(float), s>>>(
        dy, x, w, rstd, dres, accumulate, dw_partial, N, d, ceil_div(N, G));
    CUDA_CHECK_LAUNCH();
    return;
  }
  const int threads = ((ceil_div(d, kCpt) + 31) / 32) * 32;
  rmsnorm_backward_kernel<<<G, threads, 0, s>>>(dy, x, w, rstd, dres, accumulate, dw_partial, N, d, ceil_div(N, G));
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
