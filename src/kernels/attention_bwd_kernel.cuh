// Backward attention (docs/gatedfwa.md section 4), three launches and no atomics:
//   1. delta_i = rowsum(dO_i * O_i) into the workspace ([B,H,T] fp32; attention_bwd_delta.cuh, shared with sm90);
//   2. dK/dV/dlam: CTA per (key tile, K/V head), warp w owns keys 16w..16w+15 and works on the transposed
//      problem (rows = keys): S^T = K Q^T, dP^T = V dO^T, P^T = exp2(S^T - lse), dS^T = P^T (dP^T - delta),
//      dV += P^T dO, dK += dS^T Q, dlam_j = -colsum_j(dS). The queries of a key tile are those in
//      [k0, k0 + BN + W - 2]: O(W) query tiles. Grouped-query attention: the CTA walks those tiles for each
//      of the G = H/Hkv query heads that share its K/V head, one head after the other, adding into the
//      same dK/dV registers: the sum over the group needs no scratch, no second pass and no atomics, and
//      each K/V tile is loaded once per group (G = 1 is the plain multi-head loop). Each key row's sums stay
//      inside one warp (quad shuffles), so dlam (per query head) needs no cross-CTA reduction;
//   3. dQ: CTA per (query tile, query head), like the forward: dQ += dS K, and dlam_i += rowsum_i(dS) (the same thread
//      owns row i in every key tile, and launch 2 has finished: still one writer at a time, no atomics).
// dS's row sums are 0 in exact arithmetic (softmax ignores a per-row shift) but not in floating point:
// delta comes from the bf16 O. Kept, they make the gate's reverse scan telescope to the pairs that cross
// each position, so rounding no longer accumulates along T (docs/gatedfwa.md section 4).
#pragma once
#include "kernels/attention_bwd_delta.cuh"
#include "kernels/attention_common.cuh"
#include "kernels/cuda_check.h"
#include "kernels/mma_sm80.cuh"

namespace gfwa::cuda::detail {

template <int D>
struct DkvSmem {
  static constexpr int BN = AttnTraits<D>::kDkvBN, BM = AttnTraits<D>::kDkvBM;
  static constexpr int kK = 0;                          // BN x D (later: dK staging)
  static constexpr int kV = kK + BN * D * 2;            // BN x D (later: dV staging)
  static constexpr int kQ = kV + BN * D * 2;            // 2 stages of BM x D
  static constexpr int kdO = kQ + 2 * BM * D * 2;       // 2 stages of BM x D
  static constexpr int kLamK = kdO + 2 * BM * D * 2;    // 2 stages of BN floats (a query head's lam at the keys)
  static constexpr int kLamQ = kLamK + 2 * BN * 4;      // 2 stages of BM floats each:
  static constexpr int kLse = kLamQ + 2 * BM * 4;
  static constexpr int kDelta = kLse + 2 * BM * 4;
  static constexpr int kBytes = kDelta + 2 * BM * 4;
};

// kGrouped: H > Hkv. Without it the head loop below runs once with G a compile-time 1: the multi-head
// kernel, with no group bookkeeping.
template <int D, bool kGated, bool kGrouped>
__global__ void __launch_bounds__(AttnTraits<D>::kDkvWarps * 32)
    attn_dkdv_kernel(const AttnBwdParams p, const AttnConsts c, const float* delta) {
  using Tr = AttnTraits<D>;
  using S = DkvSmem<D>;
  constexpr int BN = Tr::kDkvBN, BM = Tr::kDkvBM, kThreads = Tr::kDkvWarps * 32;
  constexpr int kKSteps = D / 16, kNQ = BM / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  float* sf = reinterpret_cast<float*>(smem);

  const int T = p.T, H = p.H, W = c.W;
  const int kvh = blockIdx.y, b = blockIdx.z, G = kGrouped ? H / p.Hkv : 1;  // query heads kvh*G .. +G-1
  const int k0 = blockIdx.x * BN;
  const int i_last = min(T - 1, k0 + BN - 1 + W - 1);  // the last query that sees a key of this tile
  const int qt_lo = k0 / BM, qt_hi = i_last / BM;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int r0 = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const int64_t bT = int64_t(b) * T;
  int h = kvh * G;  // the query head in progress; its rows:
  const __nv_bfloat16* gQ = p.q + bT * p.q_row_stride + h * D;
  const __nv_bfloat16* gdO = p.dout + bT * p.dout_row_stride + h * D;
  const float* gLam = kGated ? p.lam + bT * H + h : nullptr;
  const float* gLse = p.lse + (int64_t(b) * H + h) * T;
  const float* gDelta = delta + (int64_t(b) * H + h) * T;

  // Query tile qt of query head h + dh into stage `stage` (dh = 1: the next head's first tile, prefetched
  // across the head boundary so the pipeline does not drain between the heads of a group).
  auto load_q = [&](int dh, int qt, int stage) {
    const int i0 = qt * BM;
    load_tile_async<BM, D, kThreads>(sbase + S::kQ + stage * BM * D * 2, gQ + dh * D, p.q_row_stride, i0, T);
    load_tile_async<BM, D, kThreads>(sbase + S::kdO + stage * BM * D * 2, gdO + dh * D, p.dout_row_stride, i0, T);
    if (kGated) load_vec_async(sf + S::kLamQ / 4 + stage * BM, gLam + dh, H, i0, BM, T, 0.f);
    load_vec_async(sf + S::kLse / 4 + stage * BM, gLse + dh * T, 1, i0, BM, T, 0.f);
    load_vec_async(sf + S::kDelta / 4 + stage * BM, gDelta + dh * T, 1, i0, BM, T, 0.f);
  };
  // Head h + dh's lam at this tile's keys, with that head's first query tile (one buffer per stage: the
  // next head's copy may land while this head's first tile still reads its own).
  auto load_lam_k = [&](int dh, int stage) {
    if (kGated) load_vec_async(sf + S::kLamK / 4 + stage * BN, gLam + dh, H, k0, BN, T, 0.f);
  };
  load_tile_async<BN, D, kThreads>(sbase + S::kK, p.k + bT * p.k_row_stride + kvh * D, p.k_row_stride, k0, T);
  load_tile_async<BN, D, kThreads>(sbase + S::kV, p.v + bT * p.v_row_stride + kvh * D, p.v_row_stride, k0, T);
  load_lam_k(0, 0);
  load_q(0, qt_lo, 0);
  cp_async_commit();

  float dk[kDB][4], dv[kDB][4];
#pragma unroll
  for (int d = 0; d < kDB; ++d)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[d][e] = dv[d][e] = 0.f;

  int stage = 0;
  for (const int h_end = h + G;;) {  // the group's query heads, each adding into dk, dv
    const float ref = kGated ? gLam[int64_t(k0) * H] : 0.f;
    float kb[2] = {0.f, 0.f}, dl[2] = {0.f, 0.f};
    for (int qt = qt_lo; qt <= qt_hi; ++qt, stage ^= 1) {
      if (qt < qt_hi) {
        load_q(0, qt + 1, stage ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else if (kGrouped && h + 1 < h_end) {
        load_lam_k(1, stage ^ 1);
        load_q(1, qt_lo, stage ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      if (kGated && qt == qt_lo) {
        const float* lam_k = sf + S::kLamK / 4 + (kGrouped ? stage * BN : 0);
        kb[0] = (lam_k[r0 + g] - ref) * kLog2e;
        kb[1] = (lam_k[r0 + g + 8] - ref) * kLog2e;
      }
      const int i0 = qt * BM;
      if (!tile_empty(i0, BM, k0 + r0, 16, T, W)) {
        const uint32_t sQ = sbase + S::kQ + stage * BM * D * 2, sdO = sbase + S::kdO + stage * BM * D * 2;
        const float* lamq = sf + S::kLamQ / 4 + stage * BM;
        const float* lse = sf + S::kLse / 4 + stage * BM;
        const float* dlt = sf + S::kDelta / 4 + stage * BM;

        float st[kNQ][4], dpt[kNQ][4];
#pragma unroll
        for (int n = 0; n < kNQ; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) st[n][e] = dpt[n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < kKSteps; ++kk) {
          uint32_t ak[4], av[4];
          ldsm_x4(ak, a_addr<D>(sbase + S::kK, r0, kk, aoff));
          ldsm_x4(av, a_addr<D>(sbase + S::kV, r0, kk, aoff));
#pragma unroll
          for (int n2 = 0; n2 < kNQ / 2; ++n2) {
            uint32_t bq[4], bo[4];
            ldsm_x4(bq, bn_addr<D>(sQ, n2 * 16, kk, bnoff));
            ldsm_x4(bo, bn_addr<D>(sdO, n2 * 16, kk, bnoff));
            mma_bf16(st[2 * n2], ak, bq[0], bq[1]);
            mma_bf16(st[2 * n2 + 1], ak, bq[2], bq[3]);
            mma_bf16(dpt[2 * n2], av, bo[0], bo[1]);
            mma_bf16(dpt[2 * n2 + 1], av, bo[2], bo[3]);
          }
        }

        const bool masked = tile_needs_mask(i0, BM, k0 + r0, 16, T, W);
#pragma unroll
        for (int n = 0; n < kNQ; ++n)
#pragma unroll
          for (int e2 = 0; e2 < 2; ++e2) {
            // Per query column: (lam_i - ref)*log2e - lse_i*log2e, and delta_i.
            const int col = n * 8 + 2 * tq + e2;
            const float cq = kGated ? (lamq[col] - ref - lse[col]) * kLog2e : -lse[col] * kLog2e;
            const float dc = dlt[col];
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
              const int e = 2 * hr + e2;
              float x = fmaf(st[n][e], c.scale_log2, cq);
              if (kGated) x -= kb[hr];
              float pv = exp2_approx(x);
              if (masked && !visible(i0 + col, k0 + r0 + g + 8 * hr, T, W)) pv = 0.f;
              const float ds = pv * (dpt[n][e] - dc);
              st[n][e] = pv;
              dpt[n][e] = ds;
              dl[hr] -= ds;
            }
          }

#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
          const uint32_t ap[4] = {pack_bf16(st[2 * kk][0], st[2 * kk][1]), pack_bf16(st[2 * kk][2], st[2 * kk][3]),
                                  pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                                  pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3])};
          const uint32_t as[4] = {pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]), pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]),
                                  pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                                  pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
#pragma unroll
          for (int d2 = 0; d2 < kDB / 2; ++d2) {
            uint32_t bo[4], bq[4];
            ldsm_x4_trans(bo, bk_addr<D>(sdO, kk, d2, bkoff));
            ldsm_x4_trans(bq, bk_addr<D>(sQ, kk, d2, bkoff));
            mma_bf16(dv[2 * d2], ap, bo[0], bo[1]);
            mma_bf16(dv[2 * d2 + 1], ap, bo[2], bo[3]);
            mma_bf16(dk[2 * d2], as, bq[0], bq[1]);
            mma_bf16(dk[2 * d2 + 1], as, bq[2], bq[3]);
          }
        }
      }
      __syncthreads();  // this stage is refilled by the next iteration's prefetch
    }

#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {  // head h's dlam at this warp's keys: -colsum(dS)
      dl[hr] += __shfl_xor_sync(0xffffffffu, dl[hr], 1);
      dl[hr] += __shfl_xor_sync(0xffffffffu, dl[hr], 2);
      const int j = k0 + r0 + g + 8 * hr;
      if (kGated && tq == 0 && j < T) p.dlam[(bT + j) * H + h] = dl[hr];
    }
    if (!kGrouped || ++h == h_end) break;
    gQ += D;
    gdO += D;
    if (kGated) ++gLam;
    gLse += T;
    gDelta += T;
  }

  // dK, dV go out through this warp's own rows of the K and V tiles (only this warp ever read them).
  __nv_bfloat16* sK = reinterpret_cast<__nv_bfloat16*>(smem + S::kK);
  __nv_bfloat16* sV = reinterpret_cast<__nv_bfloat16*>(smem + S::kV);
#pragma unroll
  for (int d = 0; d < kDB; ++d) {
    stage_c<D>(sK, r0, d * 8 + 2 * tq, dk[d], c.scale, lane);
    stage_c<D>(sV, r0, d * 8 + 2 * tq, dv[d], 1.f, lane);
  }
  __syncwarp();
  store_rows16<D>(sK, p.dk + bT * p.dk_row_stride + kvh * D, p.dk_row_stride, k0, r0, T, lane);
  store_rows16<D>(sV, p.dv + bT * p.dv_row_stride + kvh * D, p.dv_row_stride, k0, r0, T, lane);
}

template <int D>
struct DqSmem {
  static constexpr int BM = AttnTraits<D>::kDqBM, BN = AttnTraits<D>::kDqBN;
  static constexpr int kQ = 0;                          // BM x D (later: dQ staging)
  static constexpr int kdO = kQ + BM * D * 2;           // BM x D
  static constexpr int kK = kdO + BM * D * 2;           // 2 stages of BN x D
  static constexpr int kV = kK + 2 * BN * D * 2;        // 2 stages of BN x D
  static constexpr int kLamK = kV + 2 * BN * D * 2;     // 2 stages of BN floats
  static constexpr int kBytes = kLamK + 2 * BN * 4;
};

template <int D, bool kGated, bool kGrouped>
__global__ void __launch_bounds__(AttnTraits<D>::kDqWarps * 32)
    attn_dq_kernel(const AttnBwdParams p, const AttnConsts c, const float* delta) {
  using Tr = AttnTraits<D>;
  using S = DqSmem<D>;
  constexpr int BM = Tr::kDqBM, BN = Tr::kDqBN, MT = Tr::kDqMT, kThreads = Tr::kDqWarps * 32;
  constexpr int kKSteps = D / 16, kNB = BN / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  float* sLamK = reinterpret_cast<float*>(smem + S::kLamK);

  const int T = p.T, H = p.H, W = c.W;
  const int qt = gridDim.x - 1 - blockIdx.x;  // longest causal rows first
  // kGrouped: H > Hkv; K/V head h / (H/Hkv). Without it kvh is h at compile time: the K/V rows stay cheap to
  // recompute from blockIdx, as in the multi-head kernel (a run-time kvh costs registers: ptxas spills).
  const int h = blockIdx.y, b = blockIdx.z, kvh = kGrouped ? h / (H / p.Hkv) : h;
  const int q0 = qt * BM;
  const int q_end = min(T, q0 + BM);
  const int kt_lo = max(0, q0 - W + 1) / BN, kt_hi = (q_end - 1) / BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int r0 = warp * 16 * MT;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const int64_t bT = int64_t(b) * T;
  const __nv_bfloat16* gK = p.k + bT * p.k_row_stride + kvh * D;
  const __nv_bfloat16* gV = p.v + bT * p.v_row_stride + kvh * D;
  const float* gLam = kGated ? p.lam + bT * H + h : nullptr;

  auto load_kv = [&](int kt, int stage) {
    load_tile_async<BN, D, kThreads>(sbase + S::kK + stage * BN * D * 2, gK, p.k_row_stride, kt * BN, T);
    load_tile_async<BN, D, kThreads>(sbase + S::kV + stage * BN * D * 2, gV, p.v_row_stride, kt * BN, T);
    if (kGated) load_vec_async(sLamK + stage * BN, gLam, H, kt * BN, BN, T, 0.f);
  };
  load_tile_async<BM, D, kThreads>(sbase + S::kQ, p.q + bT * p.q_row_stride + h * D, p.q_row_stride, q0, T);
  load_tile_async<BM, D, kThreads>(sbase + S::kdO, p.dout + bT * p.dout_row_stride + h * D, p.dout_row_stride, q0,
                                   T);
  load_kv(kt_hi, 0);
  cp_async_commit();

  // Per-row constants of this thread's rows: (lam_i - ref - lse_i)*log2e and delta_i (rows past T: zeros;
  // they are masked anyway).
  const float ref = kGated ? gLam[int64_t(q0) * H] : 0.f;
  float rc[MT][2], dlt[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int i = q0 + r0 + 16 * mt + g + 8 * hr;
      const bool ok = i < T;
      const float lse_i = ok ? p.lse[(int64_t(b) * H + h) * T + i] : 0.f;
      rc[mt][hr] = ((ok && kGated ? gLam[int64_t(i) * H] - ref : 0.f) - lse_i) * kLog2e;
      dlt[mt][hr] = ok ? delta[(int64_t(b) * H + h) * T + i] : 0.f;
    }
  float dq[MT][kDB][4], rs[MT][2];  // rs: this thread's part of rowsum_i(dS) (gated only)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    rs[mt][0] = rs[mt][1] = 0.f;
#pragma unroll
    for (int d = 0; d < kDB; ++d) dq[mt][d][0] = dq[mt][d][1] = dq[mt][d][2] = dq[mt][d][3] = 0.f;
  }

  for (int kt = kt_hi, stage = 0; kt >= kt_lo; --kt, stage ^= 1) {
    if (kt > kt_lo) {
      load_kv(kt - 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int j0 = kt * BN;
    if (!tile_empty(q0 + r0, 16 * MT, j0, BN, T, W)) {
      const uint32_t sK = sbase + S::kK + stage * BN * D * 2, sV = sbase + S::kV + stage * BN * D * 2;

      float s[MT][kNB][4], dp[MT][kNB][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < kNB; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][n][e] = dp[mt][n][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        uint32_t aq[MT][4], ao[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          ldsm_x4(aq[mt], a_addr<D>(sbase + S::kQ, r0 + 16 * mt, kk, aoff));
          ldsm_x4(ao[mt], a_addr<D>(sbase + S::kdO, r0 + 16 * mt, kk, aoff));
        }
#pragma unroll
        for (int n2 = 0; n2 < kNB / 2; ++n2) {
          uint32_t bk[4], bv[4];
          ldsm_x4(bk, bn_addr<D>(sK, n2 * 16, kk, bnoff));
          ldsm_x4(bv, bn_addr<D>(sV, n2 * 16, kk, bnoff));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_bf16(s[mt][2 * n2], aq[mt], bk[0], bk[1]);
            mma_bf16(s[mt][2 * n2 + 1], aq[mt], bk[2], bk[3]);
            mma_bf16(dp[mt][2 * n2], ao[mt], bv[0], bv[1]);
            mma_bf16(dp[mt][2 * n2 + 1], ao[mt], bv[2], bv[3]);
          }
        }
      }

      // Gated: key bias (ref - lam_j)*log2e per column, computed where it is used (no 16-register array).
      const bool masked = tile_needs_mask(q0 + r0, 16 * MT, j0, BN, T, W);
#pragma unroll
      for (int n = 0; n < kNB; ++n)
#pragma unroll
        for (int e2 = 0; e2 < 2; ++e2) {
          const int col = n * 8 + 2 * tq + e2;
          const float kb = kGated ? (ref - sLamK[stage * BN + col]) * kLog2e : 0.f;
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
              const int e = 2 * hr + e2;
              float x = fmaf(s[mt][n][e], c.scale_log2, rc[mt][hr]);
              if (kGated) x += kb;
              float pv = exp2_approx(x);
              if (masked && !visible(q0 + r0 + 16 * mt + g + 8 * hr, j0 + col, T, W)) pv = 0.f;
              const float ds = pv * (dp[mt][n][e] - dlt[mt][hr]);
              s[mt][n][e] = ds;
              if (kGated) rs[mt][hr] += ds;
            }
        }

#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          a[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          a[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          a[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          a[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int d2 = 0; d2 < kDB / 2; ++d2) {
          uint32_t bk[4];
          ldsm_x4_trans(bk, bk_addr<D>(sK, kk, d2, bkoff));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_bf16(dq[mt][2 * d2], a[mt], bk[0], bk[1]);
            mma_bf16(dq[mt][2 * d2 + 1], a[mt], bk[2], bk[3]);
          }
        }
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  if (kGated) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float r = rs[mt][hr];
        r += __shfl_xor_sync(0xffffffffu, r, 1);
        r += __shfl_xor_sync(0xffffffffu, r, 2);
        const int i = q0 + r0 + 16 * mt + g + 8 * hr;
        if (tq == 0 && i < T) p.dlam[(bT + i) * H + h] += r;  // launch 2 wrote -colsum_i(dS)
      }
  }
  __nv_bfloat16* sQ = reinterpret_cast<__nv_bfloat16*>(smem + S::kQ);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int d = 0; d < kDB; ++d) stage_c<D>(sQ, r0 + 16 * mt, d * 8 + 2 * tq, dq[mt][d], c.scale, lane);
  __syncwarp();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    store_rows16<D>(sQ, p.dq + bT * p.dq_row_stride + h * D, p.dq_row_stride, q0, r0 + 16 * mt, T, lane);
}

template <int D>
void launch_attn_bwd(const AttnBwdParams& p, const AttnConsts& c, cudaStream_t stream) {
  using Tr = AttnTraits<D>;
  float* delta = p.workspace;  // attn_bwd_workspace(...).delta == 0
  launch_attn_delta<D>(p, delta, stream);

  constexpr int kDkvSmem = DkvSmem<D>::kBytes;
  auto dkdv = c.gated ? (c.grouped ? attn_dkdv_kernel<D, true, true> : attn_dkdv_kernel<D, true, false>)
                      : (c.grouped ? attn_dkdv_kernel<D, false, true> : attn_dkdv_kernel<D, false, false>);
  CUDA_CHECK(cudaFuncSetAttribute(dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, kDkvSmem));
  const dim3 gkv((p.T + Tr::kDkvBN - 1) / Tr::kDkvBN, p.Hkv, p.B);
  dkdv<<<gkv, Tr::kDkvWarps * 32, kDkvSmem, stream>>>(p, c, delta);
  CUDA_CHECK_LAUNCH();

  constexpr int kDqSmem = DqSmem<D>::kBytes;
  auto dq = c.gated ? (c.grouped ? attn_dq_kernel<D, true, true> : attn_dq_kernel<D, true, false>)
                    : (c.grouped ? attn_dq_kernel<D, false, true> : attn_dq_kernel<D, false, false>);
  CUDA_CHECK(cudaFuncSetAttribute(dq, cudaFuncAttributeMaxDynamicSharedMemorySize, kDqSmem));
  const dim3 gq((p.T + Tr::kDqBM - 1) / Tr::kDqBM, p.H, p.B);
  dq<<<gq, Tr::kDqWarps * 32, kDqSmem, stream>>>(p, c, delta);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
