// w2's input-gradient GEMM with the SwiGLU backward in its epilogue, sm_90a (gemm_swiglu.cuh; docs/cuda_backend.md,
// "SwiGLU backward in the w2 dX GEMM's epilogue"). The persistent schedule of the forward (gemm_swiglu_sm90.cu) and
// its ring (gemm_ring_sm90.cuh), with one B operand read MN-major and an epilogue that reads u:
//
// A tile is 128 rows of dres (m0..m0+127) by 128 columns of dg (j0..j0+127), dg = dres W2 (W2 row-major [d, F], the
// reduction over its rows). Per 64-row k-slab the producer loads, through TMA into one stage of a ring of 4,
//   A = dres[m0 : m0+128, k : k+64]   16 KB, K-major (128 rows of 128 bytes), as the forward's x
//   B = W2[k : k+64, j0 : j0+128]     16 KB, MN-major: two 64 x 64 boxes (columns j0.., j0+64..), 8 KB apart
// both 128-byte swizzled (32 KB a stage). Warpgroups 1 and 2 (the consumers) each own 64 rows of the tile and issue
// per slab 4 k-steps of wgmma m64n128k16 with B transposed into acc (64 fp32 a thread).
//
// B's layout (desk-checked against the MN-major SW128 canonical layout; the attention backward reads dO and Q in
// dV += P^T dO, dK += dS^T Q the same way at D = 128). TMA writes box h (h = 0, 1) of 64 W2 rows x 64 columns with row
// rho = k - k0 at byte rho * 128 of the box and the 16-byte chunk q (columns j0 + 64h + 8q ..) at chunk q ^ (rho % 8).
// wgmma k-step ks reads B[kk][n] (W2 row k0 + 16 ks + kk, column j0 + n), n = 64h + 8q + x, kk = 8g + r, at
//   start + h * LBO + g * SBO + r * 128 + q * 16 + 2x,   start = B + ks * 2048 (16 rows), LBO 8192, SBO 1024,
// then XORs address bits 4-6 with bits 7-9 (= r: every box and k-step start is 1024-byte aligned): byte
// (16 ks + kk) * 128 + (q ^ (kk % 8)) * 16 + 2x of box h, the element TMA put there.
//
// Values: dg = the fp32 accumulators rounded to bf16 (what cuBLAS's bf16 dg would hold, up to the accumulation order),
// then da, db = swiglu_grad8 (swiglu_math.cuh, swiglu_backward's expression) of that dg and u's bf16 a and b, rounded
// to bf16 and written over a and b. dg never reaches global memory; rows >= N are not stored (TMA read them as zeros).
//
// Epilogue (threads: warpgroup 0's thread 0 the producer, warps 1-3 and warpgroup 3's 4 warps the 7 epilogue warps):
// the consumers round acc to bf16 into the dg staging buffer (32 KB; 16-byte chunk c of row r at chunk c ^ (r % 8),
// so a warp's 8 rows x 4 column pairs hit 32 banks) and go on to the next tile. The tile's a and b (128 rows x 128
// columns each, unswizzled: 256 bytes a row) arrive by TMA in the ab buffer (64 KB), loaded by epilogue thread 0 as
// soon as the epilogue warps are done with the previous tile's, and prefetched into the L2 one tile before that. The
// epilogue warps take 16-byte chunks of 8 columns (a warp: 2 rows, 256 contiguous bytes of a row per half-warp), read
// dg, a and b from shared memory, and store da and db with 16-byte streaming stores. Shared memory: 4 stages (128 KB)
// + dg (32 KB) + ab (64 KB) = 224 KB.
// L2 policies: dres and W2 (re-read by the tile group) evict_last, a and b (read once) evict_first, du streaming
// stores (H200, per 124m step: 4.63 -> 4.43 ms; 1.3b 27.46 -> 26.10 ms).
//
// Barriers: the ring's full[s] / empty[s] (gemm_ring_sm90.cuh; 32 KB a stage), then
//   dg_full (count 8): the consumer warps staged tile n (phase n); dg_empty (count 7): the epilogue warps read it.
//     The consumers wait dg_empty's phase n-1 before staging tile n; the epilogue warps dg_full's phase n.
//   ab_full (count 1): epilogue thread 0's arrive.expect_tx(64 KB), then the two loads of tile n's a and b (phase n).
//     Thread 0 issues tile n+1's loads only after named barrier kAbFreeBar (the 7 epilogue warps, 224 threads) past
//     tile n, i.e. after every epilogue thread's wait on phase n and reads of the buffer: no phase runs ahead.
// Bitwise repeatable: fixed tile-to-CTA mapping, the whole K in one CTA, no atomics.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda_check.h"
#include "kernels/gemm_ring_sm90.cuh"
#include "kernels/gemm_swiglu.cuh"
#include "kernels/mma_sm80.cuh"
#include "kernels/swiglu_math.cuh"
#include "kernels/tensor_map_sm90.h"
#include "kernels/wgmma_sm90.cuh"

namespace gfwa::cuda::detail {
namespace {

struct GemmSwigluBwdTraits {
  static constexpr int BM = kGemmTileRows, BJ = kGemmTileCols, BK = 64;  // rows of dres, columns of dg, k per stage
  static constexpr int kStages = 4;
  static constexpr int kThreads = 512;
  static constexpr int kEpiWarps = 7, kEpiThreads = 32 * kEpiWarps;  // warps 1-3 and 12-15
  // Warpgroups 0 and 3; 1 and 2. No spills (ptxas); the consumers spill nothing down to 96, warpgroups 0 and 3
  // nothing at 40 and from 56 up.
  static constexpr int kOtherRegs = 96, kConsumerRegs = 160;
  static constexpr int kTileBytes = BM * BK * 2;              // A (128 rows x 64 k) or B (64 k x 128 columns): 16 KB
  static constexpr int kStageBytes = 2 * kTileBytes;
  static constexpr int kA = 0, kB = kTileBytes;  // offsets in a stage
  static constexpr int kBoxB = BK * 128;         // one 64 x 64 box of B: 8 KB (the MN-major LBO)
  static constexpr int kRow = BJ * 2;            // bytes of a staged row of dg, a or b
  static constexpr int kDg = kStages * kStageBytes;
  static constexpr int kAB = kDg + BM * kRow;  // a's 128 rows, then b's
  static constexpr int kHalfAB = BM * kRow;
  static constexpr int kBar = kAB + 2 * kHalfAB;  // the ring's 2 x kStages, dg_full, dg_empty, ab_full
  static constexpr int kBytes = kBar + (2 * kStages + 3) * 8 + 1024;  // + slack to align the base to 1024
  static constexpr int kAbFreeBar = 1;                                // named barrier (0 is __syncthreads')
  static_assert(BM == 2 * 64 && BJ == 128 && BK == 64, "2 consumer warpgroups x 64 rows, m64n128k16, 64-row slabs");
  static_assert(kBytes <= 227 * 1024, "more shared memory than a CTA may have");
  static_assert(256 * kOtherRegs + 256 * kConsumerRegs <= 65536, "register split over the SM's 64K registers");
};

struct GemmSwigluBwdArgs {
  __nv_bfloat16* u;
  int N, d, F, G;  // G: m-tiles per group of the tile order
};

__global__ void __launch_bounds__(GemmSwigluBwdTraits::kThreads, 1)
    gemm_swiglu_bwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_dres, const __grid_constant__ CUtensorMap tm_w2,
                                const __grid_constant__ CUtensorMap tm_u, const GemmSwigluBwdArgs p) {
  using Tr = GemmSwigluBwdTraits;
  constexpr int S = Tr::kStages;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw), sbase = (raw + 1023) & ~1023u;
  unsigned char* const dg = smem_raw + (sbase - raw) + Tr::kDg;  // the dg staging buffer
  const unsigned char* const ab = smem_raw + (sbase - raw) + Tr::kAB;
  const uint32_t bar0 = sbase + Tr::kBar;
  const GemmRing<S> ring{bar0};
  const uint32_t dg_full = bar0 + 8 * 2 * S, dg_empty = dg_full + 8, ab_full = dg_full + 16;

  const int n_m = (p.N + Tr::BM - 1) / Tr::BM, n_j = p.F / Tr::BJ, n_tiles = n_m * n_j, n_k = p.d / Tr::BK;
  const int first = blockIdx.x, step = gridDim.x;
  auto tile_of = [&](int t) { return gemm_tile(t, n_m, n_j, p.G); };
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wg = threadIdx.x >> 7;

  if (threadIdx.x == 0) {
    ring.init();
    mbar_init(dg_full, 8);              // the 8 consumer warps staged the tile
    mbar_init(dg_empty, Tr::kEpiWarps);  // the epilogue warps read it
    mbar_init(ab_full, 1);              // epilogue thread 0's expect_tx, then the loads
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0 || wg == 3) {
    setmaxnreg_dec<Tr::kOtherRegs>();
    if (threadIdx.x == 0) {
      // ---- producer: one thread ----
      tma_prefetch_map(&tm_dres);
      tma_prefetch_map(&tm_w2);
      // dres and W2 are re-read by the other tiles of their row / column group: kept in the L2 before u's a and b,
      // which stream through it once (measured, H200: docs/cuda_backend.md).
      const uint64_t keep = l2_evict_last_policy();
      ring.produce(first, step, n_tiles, n_k, Tr::kStageBytes, tile_of, [&](int s, uint32_t full, GemmTile w, int kb) {
        const uint32_t st = sbase + s * Tr::kStageBytes;
        const int k = kb * Tr::BK;
        tma_load_2d(st + Tr::kA, &tm_dres, full, k, w.m0, keep);
        tma_load_2d(st + Tr::kB, &tm_w2, full, w.j0, k, keep);
        tma_load_2d(st + Tr::kB + Tr::kBoxB, &tm_w2, full, w.j0 + 64, k, keep);
      });
    } else if (warp > 0) {
      // ---- epilogue warps: dg (staged) and a, b (ab buffer) -> da, db over u ----
      const int e = wg == 0 ? threadIdx.x - 32 : threadIdx.x - 384 + 96;  // 0 .. kEpiThreads-1
      // Tile t's a and b: into the ab buffer (ab_full), or into the L2 ahead of that.
      // a and b are read once and overwritten (du, by streaming stores): first out of the L2.
      auto load_ab = [&](int t) {
        const GemmTile w = tile_of(t);
        const uint64_t once = l2_evict_first_policy();
        mbar_arrive_expect_tx(ab_full, 2 * Tr::kHalfAB);
        tma_load_2d(sbase + Tr::kAB, &tm_u, ab_full, w.j0, w.m0, once);
        tma_load_2d(sbase + Tr::kAB + Tr::kHalfAB, &tm_u, ab_full, p.F + w.j0, w.m0, once);
      };
      auto prefetch_ab = [&](int t) {
        if (t >= n_tiles) return;
        const GemmTile w = tile_of(t);
        tma_prefetch_l2_2d(&tm_u, w.j0, w.m0);
        tma_prefetch_l2_2d(&tm_u, p.F + w.j0, w.m0);
      };
      if (e == 0 && first < n_tiles) {
        tma_prefetch_map(&tm_u);
        load_ab(first);
        prefetch_ab(first + step);
      }
      const int64_t ld_u = 2 * int64_t(p.F);
      int nt = 0;  // tiles so far: the phase of dg_full and ab_full
      for (int t = first; t < n_tiles; t += step, ++nt) {
        const GemmTile w = tile_of(t);
        mbar_wait(ab_full, nt & 1);
        mbar_wait(dg_full, nt & 1);
        // Item i = 16-byte chunk c = i % 16 (8 columns) of row r = i / 16 of dg, a and b.
        for (int i = e; i < Tr::BM * 16; i += Tr::kEpiThreads) {
          const int r = i >> 4, c = i & 15, row = w.m0 + r;
          if (row >= p.N) break;  // i only grows: the rest is past N too
          const uint4 dg8 = *reinterpret_cast<const uint4*>(dg + r * Tr::kRow + 16 * (c ^ (r & 7)));
          const uint4 a8 = *reinterpret_cast<const uint4*>(ab + r * Tr::kRow + 16 * c);
          const uint4 b8 = *reinterpret_cast<const uint4*>(ab + Tr::kHalfAB + r * Tr::kRow + 16 * c);
          uint4 da8, db8;
          swiglu_grad8(a8, b8, dg8, da8, db8);
          __nv_bfloat16* ua = p.u + int64_t(row) * ld_u + w.j0 + 8 * c;
          __stcs(reinterpret_cast<uint4*>(ua), da8);  // streaming: du is read next by other kernels, not this one
          __stcs(reinterpret_cast<uint4*>(ua + p.F), db8);
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(dg_empty);
        named_bar_sync(Tr::kAbFreeBar, Tr::kEpiThreads);  // every epilogue thread is done with the ab buffer
        if (e == 0 && t + step < n_tiles) {
          load_ab(t + step);
          prefetch_ab(t + 2 * step);
        }
      }
    }
  } else {
    // ---- consumers ----
    setmaxnreg_inc<Tr::kConsumerRegs>();
    const int cw = wg - 1, g = lane >> 2, tq = lane & 3;
    const int rw = 64 * cw + 16 * (warp & 3);  // this warp's first row in the tile
    // Descriptors of stage 0. A (this warpgroup's 64 rows, K-major): k-step kk adds 32 * kk bytes. B (MN-major, LBO the
    // second box): k-step kk adds 16 rows, 2048 * kk bytes. Stage s adds s * kStageBytes to both.
    const uint64_t a_desc = smem_desc_sw128(sbase + Tr::kA + cw * 64 * 128, 16, 1024);
    const uint64_t b_desc = smem_desc_sw128(sbase + Tr::kB, Tr::kBoxB, 1024);

    float acc[64];
    auto issue = [&](int s, auto first_slab) {  // GemmRing::consume_tile's issue: one slab, one commit group
      const uint32_t so = uint32_t(s) * Tr::kStageBytes;
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint64_t a = a_desc + ((so + 32 * kk) >> 4), b = b_desc + ((so + 2048 * kk) >> 4);
        if (decltype(first_slab)::value && kk == 0)
          wgmma_m64n128k16_ss_first<0, 1>(acc, a, b);
        else
          wgmma_m64n128k16_ss<0, 1>(acc, a, b, 1);
      }
      wgmma_commit();
    };

    int it = 0;  // slabs consumed so far (the producer's count)
    int nt = 0;  // tiles so far: dg_empty's phase
    for (int t = first; t < n_tiles; t += step, ++nt) {
      ring.consume_tile(it, n_k, lane, issue);
      fence_regs(acc);
      // Accumulator d[4n + e] is row rw + g + 8 * (e >> 1), column 8n + 2tq + (e & 1) of the tile: 16-byte chunk n of
      // row R = rw + g + 8hr, stored at chunk n ^ (R % 8) = n ^ g. Round to bf16 into the staging buffer once the
      // epilogue warps have read the previous tile, then hand over.
      mbar_wait(dg_empty, (nt & 1) ^ 1);
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        unsigned char* dst = dg + (rw + g + 8 * hr) * Tr::kRow + 4 * tq;
#pragma unroll
        for (int n = 0; n < 16; ++n)
          *reinterpret_cast<__nv_bfloat162*>(dst + 16 * (n ^ g)) =
              __floats2bfloat162_rn(acc[4 * n + 2 * hr], acc[4 * n + 2 * hr + 1]);
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(dg_full);
    }
  }
}

}  // namespace

void launch_gemm_swiglu_bwd_sm90(cudaStream_t s, const __nv_bfloat16* dres, const __nv_bfloat16* w2,
                                 __nv_bfloat16* u, int N, int d, int F, int sms, int l2_bytes) {
  using Tr = GemmSwigluBwdTraits;
  const CUtensorMap tm_dres = matrix_tensor_map(dres, N, d, Tr::BM, "gemm_swiglu_backward dres");
  const CUtensorMap tm_w2 = matrix_tensor_map(w2, d, F, Tr::BK, "gemm_swiglu_backward w2");
  const CUtensorMap tm_u = matrix_tensor_map_plain(u, N, 2 * int64_t(F), Tr::BM, Tr::BJ, "gemm_swiglu_backward u");
  const int n_m = (N + Tr::BM - 1) / Tr::BM;
  const GemmSwigluBwdArgs p{u, N, d, F, gemm_tile_group(n_m, d, l2_bytes)};
  CUDA_CHECK(
      cudaFuncSetAttribute(gemm_swiglu_bwd_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kBytes));
  // Persistent: one CTA per SM, or one per tile if fewer.
  const int ctas = int(std::min<int64_t>(sms, int64_t(n_m) * (F / Tr::BJ)));
  gemm_swiglu_bwd_sm90_kernel<<<ctas, Tr::kThreads, Tr::kBytes, s>>>(tm_dres, tm_w2, tm_u, p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
