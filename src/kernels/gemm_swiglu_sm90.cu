// The w13 GEMM with SwiGLU in its epilogue, sm_90a (gemm_swiglu.cuh; docs/cuda_backend.md, "SwiGLU in the w13 GEMM's
// epilogue"). The structure of attention_fwd_sm90_kernel.cuh's persistent schedule:
//
// A tile is 128 rows of x (m0..m0+127) by 128 columns of g (j0..j0+127), i.e. columns j0.. of u's first half (a) and
// F+j0.. of its second (b): per 64-column k-slab the producer loads, through TMA into one stage of a ring of S,
//   A  = x[m0 : m0+128, k : k+64]          16 KB
//   B1 = W13[j0 : j0+128, k : k+64]        16 KB
//   B3 = W13[F+j0 : F+j0+128, k : k+64]    16 KB   (48 KB a stage)
// all K-major and 128-byte swizzled (the Q K^T operands of the attention kernels). Warpgroup 0's thread 0 is the
// producer; warpgroups 1 and 2 (the consumers) each own 64 rows of the tile and issue per slab 4 k-steps of wgmma
// m64n128k16 against B1 into acc_a and 4 against B3 into acc_b (128 fp32 accumulators a thread), keeping one slab's
// group in flight while the next is issued. The grid is persistent (one CTA per SM, tiles blockIdx.x,
// blockIdx.x + gridDim.x, ...), so the producer loads the next tile's first stages while this tile's epilogue runs.
//
// Values: a and b rounded to bf16 and stored into u, g = swiglu_value of the ROUNDED a and b (swiglu_math.cuh,
// swiglu_forward's expression) rounded to bf16 and stored; rows >= N are not stored (TMA read them as zeros).
//
// Epilogue (S 3, 208 KB with the staging buffer): the consumers round the accumulators to bf16 into a staging buffer
// (a tile's u, 66 KB) and go on to the next tile; warps 1-3 of warpgroup 0 (the epilogue warps) compute g from it and
// store u and g with 16-byte stores, half a warp per 256 contiguous bytes of a row. The tensor cores then idle only
// for the consumers' shared-memory stores (64 a thread), not for the g arithmetic and the ~6,000 partial-sector global
// stores a tile of an epilogue from the consumers' registers (measured slower: docs/cuda_backend.md).
//
// Tile order (gemm_ring_sm90.cuh): groups of G m-tiles (G x 128 rows of x about a quarter of the L2), inside a group
// the m-tile fastest, then j; W13 is read once per group (at 124m all of it, 9.4 MB, stays in L2 anyway).
//
// Barriers: the ring's full[s] / empty[s] (gemm_ring_sm90.cuh; 48 KB a stage), then
//   out_full (count 8): the consumer warps staged tile n (phase n); out_empty (count 3): the epilogue warps read it.
//   The consumers wait out_empty's phase n-1 before staging tile n; the epilogue warps out_full's phase n.
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

struct GemmSwigluTraits {
  static constexpr int BM = kGemmTileRows, BJ = kGemmTileCols, BK = 64;  // rows of x, columns of g, k per stage
  static constexpr int kStages = 3;                  // the staging buffer takes a fourth stage's room
  static constexpr int kThreads = 384;
  static constexpr int kProducerRegs = 56, kConsumerRegs = 224;
  // (the epilogue warps spill 8 bytes at 40 registers and none at 48; the consumers none at 216.)
  static constexpr int kTileBytes = BM * BK * 2;  // one 128 x 64 operand: 16 KB
  static constexpr int kStageBytes = 3 * kTileBytes;
  static constexpr int kA = 0, kB1 = kTileBytes, kB3 = 2 * kTileBytes;  // offsets in a stage
  // Staging buffer: a tile's bf16 u, a row = a's 128 columns | b's 128 | 16 bytes of padding, so the
  // consumers' 4-byte stores (8 rows x 4 column pairs a warp) hit 32 different banks (row pitch 132 words = 4 mod 32).
  static constexpr int kOutPitch = 2 * BJ * 2 + 16;
  static constexpr int kOut = kStages * kStageBytes;
  static constexpr int kOutBytes = BM * kOutPitch;
  static constexpr int kBar = kOut + kOutBytes;  // the ring's 2 x kStages, out_full, out_empty
  static constexpr int kBytes = kBar + (2 * kStages + 2) * 8 + 1024;  // + slack to align the base to 1024
  static_assert(BM == 2 * 64 && BJ == 128 && BK == 64, "2 consumer warpgroups x 64 rows, m64n128k16, 64-col slabs");
  static_assert(kBytes <= 227 * 1024, "more shared memory than a CTA may have");
  static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= 65536, "register split over the SM's 64K registers");
};

struct GemmSwigluArgs {
  __nv_bfloat16* u;
  __nv_bfloat16* g;
  int N, d, F, G;  // G: m-tiles per group of the tile order
};

// g for 2 adjacent columns from the bf16 a and b of u (swiglu_forward's values: swiglu_math.cuh).
__device__ __forceinline__ __nv_bfloat162 swiglu_pair(__nv_bfloat162 a2, __nv_bfloat162 b2) {
  const float2 a = __bfloat1622float2(a2), b = __bfloat1622float2(b2);
  return __floats2bfloat162_rn(swiglu_value(a.x, b.x), swiglu_value(a.y, b.y));
}
// The same on the 32-bit words that hold the pairs.
__device__ __forceinline__ uint32_t swiglu_bits(uint32_t a2, uint32_t b2) {
  const __nv_bfloat162 v =
      swiglu_pair(*reinterpret_cast<const __nv_bfloat162*>(&a2), *reinterpret_cast<const __nv_bfloat162*>(&b2));
  return *reinterpret_cast<const uint32_t*>(&v);
}

__global__ void __launch_bounds__(GemmSwigluTraits::kThreads, 1)
    gemm_swiglu_sm90_kernel(const __grid_constant__ CUtensorMap tm_x, const __grid_constant__ CUtensorMap tm_w,
                            const GemmSwigluArgs p) {
  using Tr = GemmSwigluTraits;
  constexpr int S = Tr::kStages;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw), sbase = (raw + 1023) & ~1023u;
  unsigned char* const out = smem_raw + (sbase - raw) + Tr::kOut;  // the staging buffer
  const uint32_t bar0 = sbase + Tr::kBar;
  const GemmRing<S> ring{bar0};
  const uint32_t out_full = bar0 + 8 * 2 * S, out_empty = out_full + 8;
  auto stage = [&](int s) { return sbase + s * Tr::kStageBytes; };

  const int n_m = (p.N + Tr::BM - 1) / Tr::BM, n_j = p.F / Tr::BJ, n_tiles = n_m * n_j, n_k = p.d / Tr::BK;
  const int first = blockIdx.x, step = gridDim.x;
  auto tile_of = [&](int t) { return gemm_tile(t, n_m, n_j, p.G); };
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wg = threadIdx.x >> 7;
  const int64_t ld_u = 2 * int64_t(p.F);

  if (threadIdx.x == 0) {
    ring.init();
    mbar_init(out_full, 8);   // the 8 consumer warps staged the tile
    mbar_init(out_empty, 3);  // the 3 epilogue warps read it
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<Tr::kProducerRegs>();
    if (threadIdx.x == 0) {
      // ---- producer: one thread ----
      tma_prefetch_map(&tm_x);
      tma_prefetch_map(&tm_w);
      ring.produce(first, step, n_tiles, n_k, Tr::kStageBytes, tile_of, [&](int s, uint32_t full, GemmTile w, int kb) {
        const int k = kb * Tr::BK;
        tma_load_2d(stage(s) + Tr::kA, &tm_x, full, k, w.m0);
        tma_load_2d(stage(s) + Tr::kB1, &tm_w, full, k, w.j0);
        tma_load_2d(stage(s) + Tr::kB3, &tm_w, full, k, p.F + w.j0);
      });
    } else if (warp > 0) {
      // ---- epilogue warps 1..3: staged tile -> u (16-byte stores) and g ----
      // Item i = 16-byte chunk i % 16 (8 columns) of row i / 16 in both halves; a warp takes 32 consecutive items
      // (2 rows: 256 contiguous bytes of each output row per half-warp).
      const int e = threadIdx.x - 32;
      int nt = 0;  // tiles so far: out_full's phase
      for (int t = first; t < n_tiles; t += step, ++nt) {
        const GemmTile w = tile_of(t);
        mbar_wait(out_full, nt & 1);
        for (int i = e; i < Tr::BM * 16; i += 96) {
          const int r = i >> 4, c = i & 15, row = w.m0 + r;
          if (row >= p.N) break;  // i only grows: the rest is past N too
          const unsigned char* src = out + r * Tr::kOutPitch + 16 * c;
          const uint4 a8 = *reinterpret_cast<const uint4*>(src);
          const uint4 b8 = *reinterpret_cast<const uint4*>(src + 2 * Tr::BJ);
          __nv_bfloat16* ua = p.u + int64_t(row) * ld_u + w.j0 + 8 * c;
          *reinterpret_cast<uint4*>(ua) = a8;
          *reinterpret_cast<uint4*>(ua + p.F) = b8;
          const uint4 g8{swiglu_bits(a8.x, b8.x), swiglu_bits(a8.y, b8.y), swiglu_bits(a8.z, b8.z),
                         swiglu_bits(a8.w, b8.w)};
          *reinterpret_cast<uint4*>(p.g + int64_t(row) * p.F + w.j0 + 8 * c) = g8;
        }
        __syncwarp();
        if (lane == 0) mbar_arrive(out_empty);
      }
    }
  } else {
    // ---- consumers ----
    setmaxnreg_inc<Tr::kConsumerRegs>();
    const int cw = wg - 1, g = lane >> 2, tq = lane & 3;
    const int rw = 64 * cw + 16 * (warp & 3);  // this warp's first row in the tile
    // Descriptors of stage 0; stage s and k-step kk add s * kStageBytes + 32 * kk bytes. A: this warpgroup's 64 rows.
    const uint64_t a_desc = smem_desc_sw128(sbase + Tr::kA + cw * 64 * 128, 16, 1024);
    const uint64_t b1_desc = smem_desc_sw128(sbase + Tr::kB1, 16, 1024);
    const uint64_t b3_desc = smem_desc_sw128(sbase + Tr::kB3, 16, 1024);

    float acc_a[64], acc_b[64];
    // One slab: 4 k-steps into acc_a (B1), 4 into acc_b (B3), one commit group (GemmRing::consume_tile's issue).
    auto k_steps = [&](float(&acc)[64], uint64_t b_desc, uint32_t stage_off, auto first) {
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint32_t off = (stage_off + 32 * kk) >> 4;
        if (decltype(first)::value && kk == 0)
          wgmma_m64n128k16_ss_first<0, 0>(acc, a_desc + off, b_desc + off);
        else
          wgmma_m64n128k16_ss<0, 0>(acc, a_desc + off, b_desc + off, 1);
      }
    };
    auto issue = [&](int s, auto first) {
      const uint32_t so = uint32_t(s) * Tr::kStageBytes;
      wgmma_fence();
      k_steps(acc_a, b1_desc, so, first);
      k_steps(acc_b, b3_desc, so, first);
      wgmma_commit();
    };

    int it = 0;  // slabs consumed so far (the producer's count)
    int nt = 0;  // tiles so far: out_empty's phase
    for (int t = first; t < n_tiles; t += step, ++nt) {
      ring.consume_tile(it, n_k, lane, issue);
      fence_regs(acc_a);
      fence_regs(acc_b);

      // Accumulator d[4n + e] is row rw + g + 8 * (e >> 1), column 8n + 2tq + (e & 1) of the tile. Round to bf16 into
      // the staging buffer once the epilogue warps have read the previous tile, then hand over.
      mbar_wait(out_empty, (nt & 1) ^ 1);
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        unsigned char* dst = out + (rw + g + 8 * hr) * Tr::kOutPitch + 4 * tq;
#pragma unroll
        for (int n = 0; n < 16; ++n) {
          *reinterpret_cast<__nv_bfloat162*>(dst + 16 * n) =
              __floats2bfloat162_rn(acc_a[4 * n + 2 * hr], acc_a[4 * n + 2 * hr + 1]);
          *reinterpret_cast<__nv_bfloat162*>(dst + 2 * Tr::BJ + 16 * n) =
              __floats2bfloat162_rn(acc_b[4 * n + 2 * hr], acc_b[4 * n + 2 * hr + 1]);
        }
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(out_full);
    }
  }
}

}  // namespace

void launch_gemm_swiglu_sm90(cudaStream_t s, const __nv_bfloat16* x, const __nv_bfloat16* w13, __nv_bfloat16* u,
                             __nv_bfloat16* g, int N, int d, int F, int sms, int l2_bytes) {
  using Tr = GemmSwigluTraits;
  const CUtensorMap tm_x = matrix_tensor_map(x, N, d, Tr::BM, "gemm_swiglu x");
  const CUtensorMap tm_w = matrix_tensor_map(w13, 2 * int64_t(F), d, Tr::BJ, "gemm_swiglu w13");
  const int n_m = (N + Tr::BM - 1) / Tr::BM;
  const GemmSwigluArgs p{u, g, N, d, F, gemm_tile_group(n_m, d, l2_bytes)};
  CUDA_CHECK(cudaFuncSetAttribute(gemm_swiglu_sm90_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kBytes));
  // Persistent: one CTA per SM, or one per tile if fewer.
  const int ctas = int(std::min<int64_t>(sms, int64_t(n_m) * (F / Tr::BJ)));
  gemm_swiglu_sm90_kernel<<<ctas, Tr::kThreads, Tr::kBytes, s>>>(tm_x, tm_w, p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
