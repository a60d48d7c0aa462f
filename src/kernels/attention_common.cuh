// Shared by the attention kernels: tile traits, the mask, and the per-launch constants.
#pragma once
#include "kernels/attention_launch.h"

namespace gfwa::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Forward and dQ kernels: one warp per 16 query rows, key tiles of BN.
// dK/dV kernel: one warp per 16 key rows, query tiles of BMq.
template <int D_>
struct AttnTraits {
  static constexpr int D = D_;
  static constexpr int kFwdWarps = 8, kFwdBM = 16 * kFwdWarps, kFwdBN = 64;
  static constexpr int kDqWarps = 8, kDqBM = 16 * kDqWarps, kDqBN = 64;
  static constexpr int kDkvWarps = 8, kDkvBN = 16 * kDkvWarps, kDkvBM = 64;
  static_assert(D == 64 || D == 128, "head dim");
};

// Query i sees key j iff i - W < j <= i, for rows i < T (rows past T are padding: fully masked).
__device__ __forceinline__ bool visible(int i, int j, int T, int W) { return j <= i && j > i - W && i < T; }

// True when some pair of the query rows [i0, i0+ni) x key rows [j0, j0+nj) is not visible; interior tiles
// skip the per-element mask. Keys past T imply j > i, so the first test covers them.
__device__ __forceinline__ bool tile_needs_mask(int i0, int ni, int j0, int nj, int T, int W) {
  return j0 + nj - 1 > i0 || j0 <= i0 + ni - 1 - W || i0 + ni > T;
}

}  // namespace gfwa::cuda::detail
