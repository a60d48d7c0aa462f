// Device helpers of the NSA kernels: gathered row tiles (a tile's rows are (token, head) pairs of one K/V
// group, or the tokens that selected a block, so rows are addressed one by one), and the (value, block)
// order of the selection.
#pragma once
#include <climits>

#include "kernels/attention_common.cuh"
#include "kernels/mma_sm80.cuh"
#include "kernels/nsa_launch.h"

namespace gfwa::cuda::detail {

// Loads R rows of D bf16 into a swizzled tile (mma_sm80.cuh layout); row_ptr(r) is row r's global address,
// or nullptr for a row past the end (zero-filled). `any` is a valid address for the skipped copies.
template <int R, int D, int NTHREADS, class RowPtr>
__device__ __forceinline__ void load_rows_async(uint32_t dst, const RowPtr& row_ptr, const bf16* any) {
  constexpr int kChunks = D / 8, kStep = NTHREADS / kChunks;
  static_assert(NTHREADS % kChunks == 0 && R % kStep == 0, "row loader shape");
  const int c = threadIdx.x % kChunks, r = threadIdx.x / kChunks;
#pragma unroll
  for (int k = 0; k < R / kStep; ++k) {
    const bf16* src = row_ptr(r + k * kStep);
    cp_async16(dst + swz<D>(r + k * kStep, c), src ? src + c * 8 : any, src != nullptr);
  }
}

// Writes a warp's 16 rows r0..r0+15 of a swizzled tile to row_ptr(r) (nullptr: skipped).
template <int D, class RowPtr>
__device__ __forceinline__ void store_rows16_to(const bf16* tile, int r0, int lane, const RowPtr& row_ptr) {
  constexpr int kChunks = D / 8;
  const char* base = reinterpret_cast<const char*>(tile);
#pragma unroll
  for (int idx = lane; idx < 16 * kChunks; idx += 32) {
    const int r = r0 + idx / kChunks, c = idx % kChunks;
    bf16* dst = row_ptr(r);
    if (dst) *reinterpret_cast<uint4*>(dst + c * 8) = *reinterpret_cast<const uint4*>(base + swz<D>(r, c));
  }
}

// The selection's order: more important first, the lower block on a tie. Values are probabilities (>= 0);
// an empty slot has value -1 and never wins.
__device__ __forceinline__ bool nsa_ranks_before(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

// Exclusive prefix sum of v over the block (blockDim.x a multiple of 32, <= 1024); *total gets the sum.
// `scratch` holds 32 ints; the trailing barrier lets the caller reuse it at once.
__device__ __forceinline__ int block_exclusive_scan(int v, int* scratch, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) scratch[warp] = x;
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < nw; ++w) {
    const int s = scratch[w];
    if (w < warp) before += s;
    all += s;
  }
  __syncthreads();
  *total = all;
  return before + x - v;
}

}  // namespace gfwa::cuda::detail
