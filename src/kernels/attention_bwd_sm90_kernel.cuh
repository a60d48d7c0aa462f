// Backward attention for sm_90a, FlashAttention-3 structure (docs/kernel_notes.md, "v6: the sm_90a backward"). Same
// contract and numerics as attention_bwd_kernel.cuh (docs/gatedfwa.md section 4), three launches and the workspace of
// attention_workspace.h:
//   1. delta_i = rowsum(dO_i * O_i) (attention_bwd_delta.cuh: the mma.sync path's values), with lse and lam, into rows
//      contiguous in t and padded (attention_workspace.h);
//   2. CTA = (key tile of 128, K/V head, sequence): dK, dV and dlam's column sums for its keys, and each query tile's
//      share of dQ and of dlam's row sums, added into the fp32 accumulator in the workspace in a fixed order;
//   3. dq = bf16(scale * accumulator), dlam += the row sums.
//
// Launch 2. Warpgroup 0 (24 registers): one thread loads the K and V tiles once and streams the query tiles (Q, dO by
// TMA, delta by a bulk copy) through a 2-stage ring, for each of the G = H/Hkv query heads of the K/V head in turn;
// warps 2 and 3 write each query's exponent term (and a head's key biases) into the ring; one thread (the dQ writer)
// adds each query tile's dQ part into the accumulator. Warpgroups 1 and 2 own 64 keys each and, per query tile (BM
// queries: 64 at D = 128, 128 at D = 64):
//   S^T = K_w Q^T, dP^T = V_w dO^T                 (wgmma, both operands in shared memory; two groups)
//   P^T = exp2(S^T*scale*log2e + (lam_i - ref - lse_i)*log2e - (lam_j - ref)*log2e), masked; dS^T = P^T (dP^T - delta)
//   dlam_j -= sum_i dS (registers, per head); this warp's row sums of dS (a reduce-scatter) -> shared memory
//   dS^T (bf16) -> shared memory;  dV += P^T dO,  dK += dS^T Q   (wgmma, P^T and dS^T from registers)
//   both warpgroups' dS^T in place, dV/dK done -> dQ_part = dS K  (wgmma, dS^T read transposed; at D = 128 each
//   warpgroup takes 64 of the columns, at D = 64 64 of the queries) -> fp32 in shared memory -> the writer.
// S and dP are computed once (5 products, not the 7 of the mma.sync path, which recomputes them for dQ).
//
// Determinism: every key tile that reaches query tile m adds its dQ part (and row sums) to m's block in a fixed order,
// key tile by key tile: the writer of key tile kt waits until m's ticket counts kt - first(m) earlier additions (the
// first one stores instead of adding: no zero fill), adds with one bulk reduction, waits for it to land, and counts
// itself (release). Each value is then the same sum in the same order on every run. Progress: a CTA waits only on CTAs
// of lower linear index, which the GPU dispatches first (the grid has the key tile as its slowest index, so the CTAs
// running at once belong to many (sequence, head) chains and a chain's CTAs start two query tiles apart).
#pragma once
#include "kernels/attention_bwd_delta.cuh"
#include "kernels/attention_common.cuh"
#include "kernels/attention_workspace.h"
#include "kernels/cuda_check.h"
#include "kernels/mma_sm80.cuh"
#include "kernels/tensor_map_sm90.h"
#include "kernels/wgmma_sm90.cuh"

namespace gfwa::cuda::detail {

template <int D_>
struct Sm90BwdTraits {
  static constexpr int D = D_;
  static constexpr int BN = kAttnBwdSm90KeyTile;              // keys per CTA, 64 per consumer warpgroup
  static constexpr int BM = attn_bwd_sm90_query_tile(D);      // queries per tile
  static constexpr int kStages = 2;                           // Q/dO ring depth
  static constexpr int kThreads = 384;                        // warpgroup 0 loads and writes dQ, 1 and 2 compute
  static constexpr int kSlabs = D / 64;                       // 64-column slabs per row (128-byte swizzle rows)
  static constexpr int kSlabKV = BN * 128, kSlabQ = BM * 128;  // bytes of one slab of a key tile, a query tile
  static constexpr int kKVBytes = BN * D * 2, kQBytes = BM * D * 2;
  static constexpr int kDqFloats = BM * D + BM;               // a query tile's block of the accumulator: dQ, row sums
  static constexpr int kDqBufFloats = kDqFloats + 8 * BM;     // + the 8 consumer warps' partial row sums
  // Shared memory from a 1024-byte aligned base (the swizzle atoms need it).
  static constexpr int kK = 0;                                // BN x D (at the end: dK staging)
  static constexpr int kV = kK + kKVBytes;                    // BN x D (at the end: dV staging)
  static constexpr int kQ = kV + kKVBytes;                    // kStages x (BM x D)
  static constexpr int kdO = kQ + kStages * kQBytes;          // kStages x (BM x D)
  static constexpr int kDs = kdO + kStages * kQBytes;         // dS^T: BN x BM bf16, BM/64 slabs of BN rows
  static constexpr int kDq = kDs + BN * BM * 2;               // 2 x kDqBufFloats fp32 (the writer's double buffer)
  static constexpr int kCq = kDq + 2 * kDqBufFloats * 4;      // kStages x BM floats: each query's exponent term
  static constexpr int kDelta = kCq + kStages * BM * 4;       // kStages x BM floats: delta
  static constexpr int kKb = kDelta + kStages * BM * 4;       // kStages x BN floats: the keys' gate bias (gated)
  static constexpr int kBar = kKb + kStages * BN * 4;         // mbarriers: K/V, then per stage full Q, full dO, empty,
  static constexpr int kNumBars = 1 + 3 * kStages + 2 * 2;    // then per dQ buffer full, empty
  static constexpr int kBytes = kBar + kNumBars * 8 + 1024;   // + slack to align the base
  static_assert(D % 64 == 0 && BN == 128 && BM % 64 == 0 && BN % BM == 0 && kBytes <= 227 * 1024,
                "tile shape (the T_pad rows must cover every tile) or shared memory");
};

// Named barriers of the consumer warpgroups (0 is __syncthreads'): kBwdDsBar, both warpgroups' dS^T is in shared
// memory (256 threads; also the epilogue's "every product done"); kBwdDsFreeBar + w, warpgroup w may overwrite dS^T
// (the other warpgroup arrives once its dQ has read it); kBwdEpilogueBar + w, warpgroup w's dK/dV rows are staged.
constexpr int kBwdDsBar = 1, kBwdDsFreeBar = 2, kBwdEpilogueBar = 4;

// The workspace's parts (attention_workspace.h): delta and (lam, lse) pairs as [B, H, T_pad] rows, the accumulator,
// the tickets.
struct AttnBwdSm90Work {
  float* delta;
  float2* lam_lse;  // (lam or 0, lse)
  float* dq_acc;
  uint32_t* tickets;
  int T_pad;
};

// One halving step of reduce_scatter_rows: lanes whose `kBit` is set keep v[kHalf .. 2 kHalf - 1], the others
// v[0 .. kHalf - 1], each adding the partner lane's copy of the half it keeps; the kept half moves to v[0 .. kHalf - 1].
template <int kHalf, int kBit, int NC>
__device__ __forceinline__ void reduce_half(float (&v)[NC], bool upper) {
#pragma unroll
  for (int c = 0; c < kHalf; ++c) {
    const float keep = upper ? v[c + kHalf] : v[c], give = upper ? v[c] : v[c + kHalf];
    v[c] = keep + __shfl_xor_sync(0xffffffffu, give, kBit);
  }
}

// Sums v[c] over the 8 lanes that share t = lane % 4 (the 8 row groups g of an accumulator tile) by halving over lane
// bits 4, 3, 2. Afterwards lane (g, t) holds in v[0 .. NC/8 - 1] the sums of the values that entered as
// v[g*NC/8 .. g*NC/8 + NC/8 - 1]: 7/8 of NC shuffles instead of the 3 NC of a butterfly over every value.
template <int NC>
__device__ __forceinline__ void reduce_scatter_rows(float (&v)[NC], int lane) {
  reduce_half<NC / 2, 16>(v, (lane & 16) != 0);
  reduce_half<NC / 4, 8>(v, (lane & 8) != 0);
  reduce_half<NC / 8, 4>(v, (lane & 4) != 0);
}

// This CTA's keys and the items every role walks: (query head h, query tile qt) for h = h0 .. h0 + G - 1 and
// qt = qt_lo .. qt_hi, item i in ring stage i % kStages and dQ buffer i % 2. Each role computes it for itself: values
// computed once above the role branches would stay live in every role's registers (24 in the producer warpgroup).
struct BwdCta {
  int b, kvh, h0, kt, k0, qt_lo, qt_hi, n_items;
};
template <int BM, int BN>
__device__ __forceinline__ BwdCta bwd_cta(const AttnBwdParams& p, const AttnConsts& c) {
  BwdCta t;
  const unsigned n_bh = unsigned(p.B * p.Hkv), bh = blockIdx.x % n_bh;
  t.kt = int(blockIdx.x / n_bh);
  t.kvh = int(bh % unsigned(p.Hkv));
  t.b = int(bh / unsigned(p.Hkv));
  t.h0 = t.kvh * (p.H / p.Hkv);
  t.k0 = t.kt * BN;
  t.qt_lo = t.k0 / BM;
  t.qt_hi = min(p.T - 1, t.k0 + BN - 1 + c.W - 1) / BM;  // the last query that sees a key of this tile
  t.n_items = (p.H / p.Hkv) * (t.qt_hi - t.qt_lo + 1);
  return t;
}

template <int D, bool kGated>
__global__ void __launch_bounds__(Sm90BwdTraits<D>::kThreads, 1)
    attn_bwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                         const __grid_constant__ CUtensorMap tm_v, const __grid_constant__ CUtensorMap tm_do,
                         const AttnBwdParams p, const AttnConsts c, const AttnBwdSm90Work w) {
  using Tr = Sm90BwdTraits<D>;
  constexpr int BM = Tr::BM, BN = Tr::BN, S = Tr::kStages;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw), sbase = (raw + 1023) & ~1023u;
  unsigned char* smem = smem_raw + (sbase - raw);
  float* sCq = reinterpret_cast<float*>(smem + Tr::kCq);
  float* sDelta = reinterpret_cast<float*>(smem + Tr::kDelta);
  float* sKb = reinterpret_cast<float*>(smem + Tr::kKb);
  float* sDq = reinterpret_cast<float*>(smem + Tr::kDq);
  const uint32_t bar_kv = sbase + Tr::kBar;
  auto full_q = [&](int s) { return bar_kv + 8 * (1 + s); };
  auto full_do = [&](int s) { return bar_kv + 8 * (1 + S + s); };
  auto empty_qdo = [&](int s) { return bar_kv + 8 * (1 + 2 * S + s); };
  auto full_dq = [&](int u) { return bar_kv + 8 * (1 + 3 * S + u); };
  auto empty_dq = [&](int u) { return bar_kv + 8 * (3 + 3 * S + u); };

  const int T = p.T, H = p.H, W = c.W;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wg = threadIdx.x >> 7;

  if (threadIdx.x == 0) {
    mbar_init(bar_kv, 1);
    for (int s = 0; s < S; ++s) {
      mbar_init(full_q(s), 65);  // the loader's expect_tx and the 64 threads that write the per-query terms
      mbar_init(full_do(s), 1);
      mbar_init(empty_qdo(s), 8);  // one arrival per consumer warp
    }
    for (int u = 0; u < 2; ++u) {
      mbar_init(full_dq(u), 8);
      mbar_init(empty_dq(u), 1);  // the writer, once its bulk copy has landed
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<24>();
    if (warp == 0 && lane == 0) {
      // ---- loader (one thread): K and V once; per item Q and dO by TMA and delta by a bulk copy ----
      const auto [b, kvh, h0, kt, k0, qt_lo, qt_hi, n_items] = bwd_cta<BM, BN>(p, c);
      tma_prefetch_map(&tm_q);
      tma_prefetch_map(&tm_k);
      tma_prefetch_map(&tm_v);
      tma_prefetch_map(&tm_do);
      mbar_arrive_expect_tx(bar_kv, 2 * Tr::kKVBytes);
      for (int sl = 0; sl < Tr::kSlabs; ++sl) {
        tma_load_4d(sbase + Tr::kK + sl * Tr::kSlabKV, &tm_k, bar_kv, 64 * sl, kvh, k0, b);
        tma_load_4d(sbase + Tr::kV + sl * Tr::kSlabKV, &tm_v, bar_kv, 64 * sl, kvh, k0, b);
      }
      for (int i = 0, h = h0, qt = qt_lo; i < n_items; ++i) {
        const int s = i % S, i0 = qt * BM;
        mbar_wait(empty_qdo(s), ((i / S) & 1) ^ 1);
        mbar_arrive_expect_tx(full_q(s), Tr::kQBytes);
        for (int sl = 0; sl < Tr::kSlabs; ++sl)
          tma_load_4d(sbase + Tr::kQ + s * Tr::kQBytes + sl * Tr::kSlabQ, &tm_q, full_q(s), 64 * sl, h, i0, b);
        mbar_arrive_expect_tx(full_do(s), Tr::kQBytes + BM * 4);
        for (int sl = 0; sl < Tr::kSlabs; ++sl)
          tma_load_4d(sbase + Tr::kdO + s * Tr::kQBytes + sl * Tr::kSlabQ, &tm_do, full_do(s), 64 * sl, h, i0, b);
        bulk_load(sbase + Tr::kDelta + s * BM * 4, w.delta + (int64_t(b) * H + h) * w.T_pad + i0, BM * 4, full_do(s));
        if (++qt > qt_hi) {
          qt = qt_lo;
          ++h;
        }
      }
    } else if (warp >= 2) {
      // ---- per-query terms (two warps, half the queries each: 24 registers per thread here): each query's exponent
      // term and, gated, a new head's key biases, from the [T_pad] rows (zero past T: finite values where masked) ----
      const auto [b, kvh, h0, kt, k0, qt_lo, qt_hi, n_items] = bwd_cta<BM, BN>(p, c);
      const int half = warp - 2;
      const float2* ll = w.lam_lse + (int64_t(b) * H + h0) * w.T_pad;  // the head in progress
      float ref = 0.f;                                                // gated: lam at the tile's first key (rebasing)
      for (int i = 0, qt = qt_lo; i < n_items; ++i) {
        const int s = i % S, i0 = qt * BM;
        if (kGated && qt == qt_lo) ref = ll[k0].x;
        mbar_wait(empty_qdo(s), ((i / S) & 1) ^ 1);
#pragma unroll
        for (int k = 0; k < BM / 64; ++k) {
          const int r = (BM / 2) * half + 32 * k + lane;
          const float2 x = ll[i0 + r];
          sCq[s * BM + r] = ((kGated ? x.x - ref : 0.f) - x.y) * kLog2e;
        }
        if (kGated && qt == qt_lo)
#pragma unroll
          for (int k = 0; k < BN / 64; ++k) {
            const int r = (BN / 2) * half + 32 * k + lane;
            sKb[s * BN + r] = (ll[k0 + r].x - ref) * kLog2e;
          }
        mbar_arrive(full_q(s));
        if (++qt > qt_hi) {
          qt = qt_lo;
          ll += w.T_pad;
        }
      }
    } else if (warp == 1 && lane == 0) {
      // ---- dQ writer (one thread) ----
      const auto [b, kvh, h0, kt, k0, qt_lo, qt_hi, n_items] = bwd_cta<BM, BN>(p, c);
      const int nqt = (T + BM - 1) / BM;
      int64_t tile = (int64_t(b) * H + h0) * nqt + qt_lo;  // the accumulator block and ticket of (h, qt)
      for (int i = 0, qt = qt_lo; i < n_items; ++i) {
        const int u = i % 2;
        const uint32_t buf = smem_addr(sDq + u * Tr::kDqBufFloats);
        const int first = max(0, qt * BM - W + 1) / BN;  // the first key tile that reaches query tile qt
        float* dst = w.dq_acc + tile * Tr::kDqFloats;
        constexpr uint32_t kBytes = (kGated ? Tr::kDqFloats : BM * D) * 4;
        mbar_wait(full_dq(u), (i / 2) & 1);
        if (kt == first) {
          bulk_store(dst, buf, kBytes);
        } else {
          while (ld_acquire_gpu(w.tickets + tile) != uint32_t(kt - first)) {
          }
          fence_async_global();
          bulk_reduce_add(dst, buf, kBytes);
        }
        bulk_commit();
        bulk_wait_all();
        fence_async_global();
        red_release_gpu_add(w.tickets + tile, 1);
        mbar_arrive(empty_dq(u));
        if (++qt > qt_hi) {
          qt = qt_lo;
          tile += nqt - (qt_hi - qt_lo);  // the next head's first tile
        } else {
          ++tile;
        }
      }
    }
  } else {
    // ---- consumers ----
    setmaxnreg_inc<240>();
    constexpr bool kSplitD = D == 128;  // dQ: each warpgroup 64 of the columns (D 128) or 64 of the queries (D 64)
    const auto [b, kvh, h0, kt, k0, qt_lo, qt_hi, n_items] = bwd_cta<BM, BN>(p, c);
    const int64_t bT = int64_t(b) * T;
    const int cw = wg - 1, wi = warp & 3, g = lane >> 2, tq = lane & 3;
    const int kr = 64 * cw + 16 * wi + g;  // this thread's key rows in the tile: kr, kr + 8
    unsigned char* sDs = smem + Tr::kDs;

    // Descriptors are base + offset (start address and LBO in 16-byte units, which never carry): computed where used
    // from one base and this warpgroup's offsets, not held as eight 64-bit values across the loop.
    //   S^T, dP^T: A = this warpgroup's 64 rows of K (V), K-major; B = the query tile's Q (dO), K-major.
    //   dV += P^T dO, dK += dS^T Q: B = dO (Q) N-major (rows = queries = k, columns = d = n; LBO = slab distance).
    //   dQ part = dS K: A = dS^T M-major (rows = keys = k, columns = queries = m), B = K N-major (rows = keys).
    const uint64_t desc_base = smem_desc_sw128(sbase, 0, 1024);
    auto desc = [&](uint32_t bytes, uint32_t lbo) { return desc_base + ((bytes >> 4) | ((lbo >> 4) << 16)); };
    const uint32_t rows_w = cw * 64 * 128;                                 // this warpgroup's 64 rows of a slab
    const uint32_t dq_a = kSplitD ? 0 : cw * Tr::kSlabKV, dq_b = kSplitD ? cw * Tr::kSlabKV : 0;  // dQ's halves

    constexpr int kNS = BM / 2;  // S^T and dP^T floats per thread (64 keys x BM queries per warpgroup)
    float sacc[kNS], dpacc[kNS], dv[D / 2], dk[D / 2], dq[32];
    uint32_t pp[BM / 16][4], ps[BM / 16][4];  // P^T and dS^T in bf16: k-step kk's A fragments
    float kb[2] = {0.f, 0.f}, dl[2] = {0.f, 0.f};  // gated: the keys' bias and -colsum(dS) for the head in progress
#pragma unroll
    for (int i = 0; i < D / 2; ++i) dv[i] = dk[i] = 0.f;

    // acc = A B over the head dim: A = this warpgroup's 64 rows of the key tile at a_tile (K or V), B = the query
    // tile at b_tile (Q or dO) in stage s.
    auto issue_scores = [&](float(&acc)[kNS], uint32_t a_tile, uint32_t b_tile, int s) {
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint64_t a = desc(a_tile + rows_w + (kk / 4) * Tr::kSlabKV + (kk % 4) * 32, 16);
        const uint64_t bb = desc(b_tile + s * Tr::kQBytes + (kk / 4) * Tr::kSlabQ + (kk % 4) * 32, 16);
        if constexpr (BM == 64) {
          if (kk == 0)
            wgmma_m64n64k16_ss_first<0, 0>(acc, a, bb);
          else
            wgmma_m64n64k16_ss<0, 0>(acc, a, bb, 1);
        } else {
          if (kk == 0)
            wgmma_m64n128k16_ss_first<0, 0>(acc, a, bb);
          else
            wgmma_m64n128k16_ss<0, 0>(acc, a, bb, 1);
        }
      }
      wgmma_commit();
    };
    auto issue_dvdk = [&](int s) {
      fence_regs(dv);
      fence_regs(dk);
      fence_regs(pp);
      fence_regs(ps);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BM / 16; ++kk) {
        const uint32_t off = s * Tr::kQBytes + kk * 16 * 128;
        const uint64_t bo = desc(Tr::kdO + off, Tr::kSlabQ), bq = desc(Tr::kQ + off, Tr::kSlabQ);
        if constexpr (D == 128) {
          wgmma_m64n128k16_rs<1>(dv, pp[kk], bo);
          wgmma_m64n128k16_rs<1>(dk, ps[kk], bq);
        } else {
          wgmma_m64n64k16_rs<1>(dv, pp[kk], bo);
          wgmma_m64n64k16_rs<1>(dk, ps[kk], bq);
        }
      }
      wgmma_commit();
    };
    auto issue_dq = [&] {
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        const uint64_t a = desc(Tr::kDs + dq_a + kk * 16 * 128, Tr::kSlabKV);
        const uint64_t bk = desc(Tr::kK + dq_b + kk * 16 * 128, Tr::kSlabKV);
        if (kk == 0)
          wgmma_m64n64k16_ss_first<1, 1>(dq, a, bk);
        else
          wgmma_m64n64k16_ss<1, 1>(dq, a, bk, 1);
      }
      wgmma_commit();
    };

    mbar_wait(bar_kv, 0);
    for (int i = 0, h = h0, qt = qt_lo; i < n_items; ++i) {
      const int s = i % S, u = i % 2, i0 = qt * BM;
      const uint32_t ph = (i / S) & 1;
      const bool active = !tile_empty(i0, BM, k0 + 64 * cw, 64, T, W);  // warpgroup-uniform
      mbar_wait(full_q(s), ph);
      if (kGated && qt == qt_lo) {
        kb[0] = sKb[s * BN + kr];
        kb[1] = sKb[s * BN + kr + 8];
      }
      // One if/else from the products to the packing, P^T and dS^T set on both paths: the compiler then sees S^T, dP^T,
      // P^T and dS^T dead between items (else they stay live across the loop: spills).
      float rs[BM / 32];  // gated: this lane's share of the warp's row sums of dS (queries, see below)
#pragma unroll
      for (int e = 0; e < BM / 32; ++e) rs[e] = 0.f;
      if (!active) {  // nothing visible to these 64 keys: dS^T is zero, no dV/dK products
        mbar_wait(full_do(s), ph);
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk)
#pragma unroll
          for (int e = 0; e < 4; ++e) pp[kk][e] = ps[kk][e] = 0u;
      } else {
        issue_scores(sacc, Tr::kK, Tr::kQ, s);
        mbar_wait(full_do(s), ph);
        issue_scores(dpacc, Tr::kV, Tr::kdO, s);
        wgmma_wait<1>();  // S^T done; dP^T may still run
        fence_regs(sacc);
        // visible(i, j) (attention_common.cuh) as 0 <= i - j < W and i < T, with i - j = ij0 + 8n + e2 - 8hr and i < T
        // iff 8n + e2 < i_room: two registers for every element's test (registers are this kernel's limit).
        const bool masked = tile_needs_mask(i0, BM, k0 + kr - g, 16, T, W);  // this warp's 16 keys
        const int ij0 = i0 + 2 * tq - (k0 + kr), i_room = T - i0 - 2 * tq;
#pragma unroll
        for (int n = 0; n < BM / 8; ++n) {
          const float2 cq = *reinterpret_cast<const float2*>(sCq + s * BM + 8 * n + 2 * tq);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int hr = e >> 1, e2 = e & 1;
            float x = fmaf(sacc[4 * n + e], c.scale_log2, e2 ? cq.y : cq.x);
            if (kGated) x -= kb[hr];
            float pv = exp2_approx(x);
            if (masked && (unsigned(ij0 + 8 * n + e2 - 8 * hr) >= unsigned(W) || 8 * n + e2 >= i_room)) pv = 0.f;
            sacc[4 * n + e] = pv;
          }
        }
        wgmma_wait<0>();
        fence_regs(dpacc);
        // dS = P (dP - delta), packed with P as soon as each k-step's 8 values exist (S^T and dP^T die as P^T and dS^T
        // fill up). Gated: -colsum into dl, and v[c] = this thread's two keys' dS at query column 8(c/2) + 2t + c%2.
        float v[BM / 4];
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
          float ds[8];
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const int n = 2 * kk + j;
            const float2 dc = *reinterpret_cast<const float2*>(sDelta + s * BM + 8 * n + 2 * tq);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              ds[4 * j + e] = sacc[4 * n + e] * (dpacc[4 * n + e] - ((e & 1) ? dc.y : dc.x));
              if (kGated) dl[e >> 1] -= ds[4 * j + e];
            }
            v[2 * n] = ds[4 * j] + ds[4 * j + 2];
            v[2 * n + 1] = ds[4 * j + 1] + ds[4 * j + 3];
          }
          pp[kk][0] = pack_bf16(sacc[8 * kk], sacc[8 * kk + 1]);
          pp[kk][1] = pack_bf16(sacc[8 * kk + 2], sacc[8 * kk + 3]);
          pp[kk][2] = pack_bf16(sacc[8 * kk + 4], sacc[8 * kk + 5]);
          pp[kk][3] = pack_bf16(sacc[8 * kk + 6], sacc[8 * kk + 7]);
          ps[kk][0] = pack_bf16(ds[0], ds[1]);
          ps[kk][1] = pack_bf16(ds[2], ds[3]);
          ps[kk][2] = pack_bf16(ds[4], ds[5]);
          ps[kk][3] = pack_bf16(ds[6], ds[7]);
        }
        if (kGated) {  // row sums of dS over this warp's 16 keys; this lane keeps columns c = g*BM/32 ..
          reduce_scatter_rows(v, lane);
#pragma unroll
          for (int e = 0; e < BM / 32; ++e) rs[e] = v[e];
        }
      }
      if (kGated && qt == qt_hi) {  // head h done: its dlam at this thread's keys is -colsum(dS)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const float x = quad_sum(dl[hr]);
          const int j = k0 + kr + 8 * hr;
          if (tq == 0 && j < T) p.dlam[(bT + j) * H + h] = x;
          dl[hr] = 0.f;
        }
      }

      // dS^T in bf16 at this thread's key rows, once the other warpgroup's dQ of the previous item has read the buffer.
      if (i > 0) named_bar_sync(kBwdDsFreeBar + cw, 256);
#pragma unroll
      for (int n = 0; n < BM / 8; ++n)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int row = kr + 8 * hr;  // row % 8 == g
          *reinterpret_cast<uint32_t*>(sDs + (n / 8) * Tr::kSlabKV + row * 128 + (((n % 8) ^ g) << 4) + 4 * tq) =
              ps[n / 2][2 * (n & 1) + hr];
        }
      mbar_wait(empty_dq(u), ((i / 2) & 1) ^ 1);
      float* buf = sDq + u * Tr::kDqBufFloats;
      if (kGated) {  // this warp's row sums: lane (g, t) holds query columns 8n + 2t, +1 for n = g*BM/64 + e/2
        float* part = buf + Tr::kDqFloats + (4 * cw + wi) * BM;
#pragma unroll
        for (int e = 0; e < BM / 64; ++e)
          *reinterpret_cast<float2*>(part + 8 * (g * (BM / 64) + e) + 2 * tq) = make_float2(rs[2 * e], rs[2 * e + 1]);
      }
      fence_async_smem();
      // dV, dK, then dQ once both warpgroups' dS^T is in place. dQ waits for dV and dK, so that their A fragments
      // (P^T, dS^T) and dQ's accumulators are never live at once (registers; the tensor cores are kept busy by the other
      // warpgroup's products meanwhile).
      if (active) issue_dvdk(s);
      named_bar_sync(kBwdDsBar, 256);
      if (kGated && threadIdx.x - 128 < BM) {  // the tile's row sums of dS: the 8 warps' parts, in warp order
        const int r = threadIdx.x - 128;
        float sum = 0.f;
#pragma unroll
        for (int wj = 0; wj < 8; ++wj) sum += buf[Tr::kDqFloats + wj * BM + r];
        buf[BM * D + r] = sum;
      }
      if (active) {
        wgmma_wait<0>();
        fence_regs(dv);
        fence_regs(dk);
        fence_regs(pp);
        fence_regs(ps);
      }
      issue_dq();
      wgmma_wait<0>();
      fence_regs(dq);
      __syncwarp();
      if (lane == 0) mbar_arrive(empty_qdo(s));
      if (i + 1 < n_items) named_bar_arrive(kBwdDsFreeBar + 1 - cw, 256);

      // This warpgroup's dQ part, fp32, row r's 8-column groups XOR-swizzled by r % 8 (conflict-free float2 stores),
      // for the writer's bulk copy.
#pragma unroll
      for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int r = (kSplitD ? 0 : 64 * cw) + 16 * wi + g + 8 * hr;  // r % 8 == g
          const int col = (kSplitD ? 64 * cw : 0) + 8 * n + 2 * tq;
          *reinterpret_cast<float2*>(buf + r * D + (col ^ (g << 3))) =
              make_float2(dq[4 * n + 2 * hr], dq[4 * n + 2 * hr + 1]);
        }
      fence_async_smem();
      __syncwarp();
      if (lane == 0) mbar_arrive(full_dq(u));
      if (++qt > qt_hi) {
        qt = qt_lo;
        ++h;
      }
    }

    // Epilogue: dK (times scale) and dV staged as bf16 in the K and V tiles (same swizzle; each warpgroup its rows),
    // then written out 16 bytes per thread. Every product of both warpgroups must be done first (dQ reads all of K).
    named_bar_sync(kBwdDsBar, 256);
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int off = (n / 8) * Tr::kSlabKV + (kr + 8 * hr) * 128 + (((n % 8) ^ g) << 4) + 4 * tq;
        *reinterpret_cast<uint32_t*>(smem + Tr::kK + off) =
            pack_bf16(dk[4 * n + 2 * hr] * c.scale, dk[4 * n + 2 * hr + 1] * c.scale);
        *reinterpret_cast<uint32_t*>(smem + Tr::kV + off) = pack_bf16(dv[4 * n + 2 * hr], dv[4 * n + 2 * hr + 1]);
      }
    named_bar_sync(kBwdEpilogueBar + cw, 128);
    __nv_bfloat16* gdk = p.dk + bT * p.dk_row_stride + kvh * D;
    __nv_bfloat16* gdv = p.dv + bT * p.dv_row_stride + kvh * D;
    constexpr int kChunks = D / 8;
    for (int idx = threadIdx.x & 127; idx < 64 * kChunks; idx += 128) {
      const int row = 64 * cw + idx / kChunks, cc = idx % kChunks, j = k0 + row;
      if (j < T) {
        const int off = (cc / 8) * Tr::kSlabKV + row * 128 + (((cc % 8) ^ (row & 7)) << 4);
        *reinterpret_cast<uint4*>(gdk + int64_t(j) * p.dk_row_stride + cc * 8) =
            *reinterpret_cast<const uint4*>(smem + Tr::kK + off);
        *reinterpret_cast<uint4*>(gdv + int64_t(j) * p.dv_row_stride + cc * 8) =
            *reinterpret_cast<const uint4*>(smem + Tr::kV + off);
      }
    }
  }
}

// Launch 1: per row (b, t < T_pad, query head h), one warp: delta (attn_row_delta: the mma.sync path's values) and the
// pair ((gated) lam, lse), into [B, H, T_pad] rows; zeros past T.
template <int D>
__global__ void __launch_bounds__(256) attn_bwd_rows_sm90_kernel(const AttnBwdParams p, const AttnConsts c,
                                                                 const AttnBwdSm90Work w) {
  const int64_t row = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);  // (b * T_pad + t) * H + h
  const int lane = threadIdx.x & 31;
  if (row >= int64_t(p.B) * w.T_pad * p.H) return;
  const int h = int(row % p.H);
  const int64_t bt_pad = row / p.H;
  const int t = int(bt_pad % w.T_pad), b = int(bt_pad / w.T_pad);
  const int64_t out = (int64_t(b) * p.H + h) * w.T_pad + t, bt = int64_t(b) * p.T + t;
  const bool real = t < p.T;
  const float delta = real ? attn_row_delta<D>(p, bt, h, lane) : 0.f;
  if (lane == 0) {
    w.delta[out] = delta;
    w.lam_lse[out] = real ? make_float2(c.gated ? p.lam[bt * p.H + h] : 0.f, p.lse[(int64_t(b) * p.H + h) * p.T + t])
                          : make_float2(0.f, 0.f);
  }
}

// Launch 3: dq = bf16(scale * accumulated dQ), and gated dlam += the accumulated row sums (launch 2 wrote -colsum).
// One thread per 8 values of a row; rows past T are skipped.
template <int D>
__global__ void __launch_bounds__(256) attn_dq_convert_sm90_kernel(const AttnBwdParams p, const AttnConsts c,
                                                                   const float* acc) {
  using Tr = Sm90BwdTraits<D>;
  constexpr int BM = Tr::BM, kChunks = D / 8;
  const int nqt = (p.T + BM - 1) / BM;
  const int64_t idx = int64_t(blockIdx.x) * 256 + threadIdx.x;
  if (idx >= int64_t(p.B) * p.H * nqt * BM * kChunks) return;
  const int cc = int(idx % kChunks);
  const int64_t row = idx / kChunks;  // ((b * H + h) * nqt + m) * BM + r
  const int r = int(row % BM);
  const int64_t tile = row / BM;
  const int m = int(tile % nqt);
  const int64_t bh = tile / nqt;
  const int h = int(bh % p.H), b = int(bh / p.H), t = m * BM + r;
  if (t >= p.T) return;
  const float* block = acc + tile * Tr::kDqFloats;
  const float* x = block + r * D + ((cc * 8) ^ ((r & 7) << 3));
  const float4 lo = *reinterpret_cast<const float4*>(x), hi = *reinterpret_cast<const float4*>(x + 4);
  const float sc = c.scale;
  const uint4 out = {pack_bf16(lo.x * sc, lo.y * sc), pack_bf16(lo.z * sc, lo.w * sc), pack_bf16(hi.x * sc, hi.y * sc),
                     pack_bf16(hi.z * sc, hi.w * sc)};
  const int64_t bt = int64_t(b) * p.T + t;
  *reinterpret_cast<uint4*>(p.dq + bt * p.dq_row_stride + h * D + cc * 8) = out;
  if (c.gated && cc == 0) p.dlam[bt * p.H + h] += block[BM * D + r];
}

template <int D>
void launch_attn_bwd_sm90(const AttnBwdParams& p, const AttnConsts& c, cudaStream_t stream) {
  using Tr = Sm90BwdTraits<D>;
  const AttnBwdWorkspace layout = attn_bwd_workspace(p.B, p.T, p.H, D);
  unsigned char* ws = reinterpret_cast<unsigned char*>(p.workspace);
  float* rows = reinterpret_cast<float*>(ws + layout.rows);
  const size_t n_rows = size_t(p.B) * p.H * layout.T_pad;
  const AttnBwdSm90Work w{rows,
                          reinterpret_cast<float2*>(rows + n_rows),
                          reinterpret_cast<float*>(ws + layout.dq_acc),
                          reinterpret_cast<uint32_t*>(ws + layout.tickets),
                          int(layout.T_pad)};
  attn_bwd_rows_sm90_kernel<D><<<unsigned((n_rows + 7) / 8), 256, 0, stream>>>(p, c, w);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemsetAsync(w.tickets, 0, layout.bytes - layout.tickets, stream));

  const CUtensorMap q = attn_tensor_map(p.q, p.q_row_stride, p.B, p.T, p.H, D, Tr::BM);
  const CUtensorMap k = attn_tensor_map(p.k, p.k_row_stride, p.B, p.T, p.Hkv, D, Tr::BN);
  const CUtensorMap v = attn_tensor_map(p.v, p.v_row_stride, p.B, p.T, p.Hkv, D, Tr::BN);
  const CUtensorMap dout = attn_tensor_map(p.dout, p.dout_row_stride, p.B, p.T, p.H, D, Tr::BM);
  auto kernel = c.gated ? attn_bwd_sm90_kernel<D, true> : attn_bwd_sm90_kernel<D, false>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kBytes));
  // One dimension, the key tile slowest: the CTAs that run at once span many (sequence, K/V head) chains.
  const int64_t ctas = int64_t((p.T + Tr::BN - 1) / Tr::BN) * p.B * p.Hkv;
  kernel<<<unsigned(ctas), Tr::kThreads, Tr::kBytes, stream>>>(q, k, v, dout, p, c, w);
  CUDA_CHECK_LAUNCH();

  const int64_t threads = int64_t(p.B) * p.H * ((p.T + Tr::BM - 1) / Tr::BM) * Tr::BM * (D / 8);
  attn_dq_convert_sm90_kernel<D><<<unsigned((threads + 255) / 256), 256, 0, stream>>>(p, c, w.dq_acc);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
