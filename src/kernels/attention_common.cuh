// Shared by the attention kernels: tile traits, the mask, and the per-launch constants.
#pragma once
#include "kernels/attention_launch.h"

namespace gfwa::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Forward and dQ kernels: a warp owns kMT m-tiles of 16 query rows (each K/V fragment read from shared
// memory feeds kMT mma), key tiles of BN. dK/dV kernel: a warp owns 16 key rows, query tiles of BMq.
// Shapes are bounded by registers (<= 255 per thread): O (or dQ) takes 16*D*kMT/32 per thread.
// Picked by timing variants on the H200 (docs/kernels.md, v2): for D = 128 two m-tiles per warp pay in the
// forward (a K/V fragment feeds 2 mma) but not in the backward, where dQ/dK/dV accumulators fill the
// registers; 4-warp CTAs (two per SM) hide latency better than one 8-warp CTA in lock-step.
template <int D_>
struct AttnTraits;
template <>
struct AttnTraits<64> {
  static constexpr int D = 64;
  static constexpr int kFwdWarps = 4, kFwdMT = 2, kFwdBN = 64;
  static constexpr int kDqWarps = 4, kDqMT = 2, kDqBN = 64;
  static constexpr int kDkvWarps = 4, kDkvBM = 64;
  static constexpr int kFwdBM = 16 * kFwdMT * kFwdWarps, kDqBM = 16 * kDqMT * kDqWarps, kDkvBN = 16 * kDkvWarps;
};
template <>
struct AttnTraits<128> {
  static constexpr int D = 128;
  static constexpr int kFwdWarps = 4, kFwdMT = 2, kFwdBN = 64;
  static constexpr int kDqWarps = 4, kDqMT = 1, kDqBN = 64;
  static constexpr int kDkvWarps = 4, kDkvBM = 64;
  static constexpr int kFwdBM = 16 * kFwdMT * kFwdWarps, kDqBM = 16 * kDqMT * kDqWarps, kDkvBN = 16 * kDkvWarps;
};

// Query i sees key j iff i - W < j <= i, for rows i < T (rows past T are padding: fully masked).
__device__ __forceinline__ bool visible(int i, int j, int T, int W) { return j <= i && j > i - W && i < T; }

// True when no pair of the query rows [i0, i0+ni) x key rows [j0, j0+nj) is visible: a warp skips the
// tile's arithmetic (it still joins the CTA's barriers).
__device__ __forceinline__ bool tile_empty(int i0, int ni, int j0, int nj, int T, int W) {
  return j0 > min(i0 + ni - 1, T - 1) || j0 + nj - 1 <= i0 - W || i0 >= T;
}

// True when some pair of the query rows [i0, i0+ni) x key rows [j0, j0+nj) is not visible; interior tiles
// skip the per-element mask. Keys past T imply j > i, so the first test covers them.
__device__ __forceinline__ bool tile_needs_mask(int i0, int ni, int j0, int nj, int T, int W) {
  return j0 + nj - 1 > i0 || j0 <= i0 + ni - 1 - W || i0 + ni > T;
}

}  // namespace gfwa::cuda::detail
