// The persistent schedule shared by the sm_90a GEMMs with SwiGLU in their epilogue (gemm_swiglu_sm90.cu: w13 and
// the forward SwiGLU; gemm_swiglu_bwd_sm90.cu: w2's dX and the backward SwiGLU): the order of the 128 x 128 output
// tiles, and the ring of S shared-memory stages that one producer thread fills by TMA and the two consumer warpgroups
// (8 warps) drain with wgmma, one 64-wide k-slab a stage. Included only by *_sm90*.cu files.
//
// Ring barriers (mbarriers, one pair per stage s; a stage's use u = (its slab count on this CTA) / S):
//   full[s]   count 1: the producer thread's arrive.expect_tx(stage bytes), then its TMA loads complete that many bytes
//             of transactions (rows past the matrix are zero-filled and count in full). Consumers wait parity u & 1.
//   empty[s]  count 8: lane 0 of each of the 8 consumer warps, after its warpgroup's wgmma that read the stage is done
//             (wgmma_wait<1> after the next slab's issue, or wait<0> after the tile's last slab). The producer waits
//             parity (u & 1) ^ 1 before use u (use 0: the parity before phase 0, which passes at once).
//   No barrier can run two phases ahead of a waiter: full[s] phase u+1 needs empty[s] phase u, which needs the
//   arrivals of every consumer warp after its own wait on full[s] phase u (both warpgroups consume every slab);
//   empty[s] phase u needs full[s] phase u, i.e. the producer's load after its wait on empty[s] phase u-1.
//   Every thread walks the same tiles and slabs, so all use counts agree.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/wgmma_sm90.cuh"

namespace gfwa::cuda::detail {

constexpr int kGemmTileRows = 128, kGemmTileCols = 128;  // an output tile: 2 consumer warpgroups x m64n128

struct GemmTile {
  int m0, j0;  // first row, first column
};
// Tile t of n_m x n_j tiles: groups of G m-tiles, inside a group the m-tile fastest, then j. The CTAs running at one
// time then share B tiles (the same j), and each group's A rows stay in L2 while all of the group's j-tiles pass; B is
// read once per group. (Plain m-fastest over all of N would re-read A, e.g. 50 MB at N 32768, d 768: more than the L2,
// once per j-tile.)
__device__ __forceinline__ GemmTile gemm_tile(int t, int n_m, int n_j, int G) {
  const int group = t / (G * n_j), r = t - group * G * n_j;
  const int mg = group * G, gs = min(G, n_m - mg);
  return {(mg + r % gs) * kGemmTileRows, (r / gs) * kGemmTileCols};
}
// G for A rows of d bf16: a group's rows in about a quarter of the L2 (the rest: B, the outputs streaming through):
// 66 m-tiles at d 768 and a 50 MB L2, 25 at d 2048.
inline int gemm_tile_group(int n_m, int d, int l2_bytes) {
  const int64_t rows_bytes = int64_t(kGemmTileRows) * d * 2;
  return int(std::max<int64_t>(1, std::min<int64_t>(n_m, (int64_t(l2_bytes) / 4) / rows_bytes)));
}

// The ring's barriers: full(s) at bar0 + 8 s, empty(s) at bar0 + 8 (S + s); 2 S mbarriers in all.
template <int S>
struct GemmRing {
  uint32_t bar0;

  __device__ __forceinline__ uint32_t full(int s) const { return bar0 + 8 * s; }
  __device__ __forceinline__ uint32_t empty(int s) const { return bar0 + 8 * (S + s); }
  // One thread, before the kernel's mbar_init_fence and __syncthreads.
  __device__ __forceinline__ void init() const {
    for (int s = 0; s < S; ++s) {
      mbar_init(full(s), 1);
      mbar_init(empty(s), 8);  // the 8 consumer warps
    }
  }

  // The producer thread: every k-slab of the CTA's tiles (first, first + step, ... < n_tiles) in order.
  // load(s, full_bar, tile, kb) issues the TMA loads of slab kb of the tile into stage s, stage_bytes in all.
  template <class TileOf, class Load>
  __device__ __forceinline__ void produce(int first, int step, int n_tiles, int n_k, uint32_t stage_bytes,
                                          TileOf tile_of, Load load) const {
    int it = 0;  // slabs loaded so far: stage it % S, use it / S
    for (int t = first; t < n_tiles; t += step) {
      const GemmTile w = tile_of(t);
      for (int kb = 0; kb < n_k; ++kb, ++it) {
        const int s = it % S;
        mbar_wait(empty(s), ((it / S) & 1) ^ 1);
        mbar_arrive_expect_tx(full(s), stage_bytes);
        load(s, full(s), w, kb);
      }
    }
  }

  // A consumer warp: one tile's n_k slabs, the first at slab count it (the producer's count). issue(s, first) issues
  // one slab's wgmma from stage s as one commit group (first: std::true_type for the tile's first slab, which
  // overwrites the accumulators); one slab's group stays in flight while the next is issued. Returns once every
  // product is done and every stage released, with it advanced by n_k. The caller ties its accumulators to the wait
  // (fence_regs) before reading them.
  template <class Issue>
  __device__ __forceinline__ void consume_tile(int& it, int n_k, int lane, Issue issue) const {
    mbar_wait(full(it % S), (it / S) & 1);
    issue(it % S, std::true_type{});
    for (int kb = 1; kb < n_k; ++kb) {
      const int s = (it + kb) % S;
      mbar_wait(full(s), ((it + kb) / S) & 1);
      issue(s, std::false_type{});
      wgmma_wait<1>();  // the previous slab's products are done: its stage is free
      release((it + kb - 1) % S, lane);
    }
    wgmma_wait<0>();
    release((it + n_k - 1) % S, lane);
    it += n_k;
  }

 private:
  __device__ __forceinline__ void release(int s, int lane) const {
    __syncwarp();
    if (lane == 0) mbar_arrive(empty(s));
  }
};

}  // namespace gfwa::cuda::detail
