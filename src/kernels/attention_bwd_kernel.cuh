// Backward attention (docs/gatedfwa.md section 4), three launches and no atomics:
//   1. delta_i = rowsum(dO_i * O_i) into the workspace ([B,H,T] fp32);
//   2. dK/dV/dlam: CTA per key tile, warp w owns keys 16w..16w+15 and works on the transposed problem
//      (rows = keys): S^T = K Q^T, dP^T = V dO^T, P^T = exp2(S^T - lse), dS^T = P^T (dP^T - delta),
//      dV += P^T dO, dK += dS^T Q, dlam_j = -colsum_j(dS). The queries of a key tile are those in
//      [k0, k0 + BN + W - 2]: O(W) query tiles. Each key row's sums stay inside one warp (quad shuffles),
//      so dlam needs no cross-CTA reduction;
//   3. dQ: CTA per query tile, like the forward: dQ += dS K, and dlam_i += rowsum_i(dS) (the same thread
//      owns row i in every key tile, and launch 2 has finished: still one writer at a time, no atomics).
// dS's row sums are 0 in exact arithmetic (softmax ignores a per-row shift) but not in floating point:
// delta comes from the bf16 O. Kept, they make the gate's reverse scan telescope to the pairs that cross
// each position, so rounding no longer accumulates along T (docs/gatedfwa.md section 4).
#pragma once
#include "kernels/attention_common.cuh"
#include "kernels/cuda_check.h"
#include "kernels/mma_sm80.cuh"

namespace gfwa::cuda::detail {

template <int D>
__global__ void __launch_bounds__(256) attn_delta_kernel(const AttnBwdParams p, float* delta) {
  const int64_t row = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= int64_t(p.B) * p.T * p.H) return;
  const int h = int(row % p.H);
  const int64_t bt = row / p.H;
  const int t = int(bt % p.T), b = int(bt / p.T);
  const __nv_bfloat16* o = p.o + bt * p.o_row_stride + h * D;
  const __nv_bfloat16* dout = p.dout + bt * p.dout_row_stride + h * D;
  float acc = 0.f;
#pragma unroll
  for (int d = 2 * lane; d < D; d += 64) {
    const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(o + d));
    const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dout + d));
    acc += x.x * y.x + x.y * y.y;
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) delta[(int64_t(b) * p.H + h) * p.T + t] = acc;
}

template <int D>
struct DkvSmem {
  static constexpr int BN = AttnTraits<D>::kDkvBN, BM = AttnTraits<D>::kDkvBM;
  static constexpr int kK = 0;                          // BN x D (later: dK staging)
  static constexpr int kV = kK + BN * D * 2;            // BN x D (later: dV staging)
  static constexpr int kQ = kV + BN * D * 2;            // 2 stages of BM x D
  static constexpr int kdO = kQ + 2 * BM * D * 2;       // 2 stages of BM x D
  static constexpr int kLamK = kdO + 2 * BM * D * 2;    // BN floats
  static constexpr int kLamQ = kLamK + BN * 4;          // 2 stages of BM floats each:
  static constexpr int kLse = kLamQ + 2 * BM * 4;
  static constexpr int kDelta = kLse + 2 * BM * 4;
  static constexpr int kBytes = kDelta + 2 * BM * 4;
};

template <int D, bool kGated>
__global__ void __launch_bounds__(AttnTraits<D>::kDkvWarps * 32)
    attn_dkdv_kernel(const AttnBwdParams p, const AttnConsts c, const float* delta) {
  using Tr = AttnTraits<D>;
  using S = DkvSmem<D>;
  constexpr int BN = Tr::kDkvBN, BM = Tr::kDkvBM, kThreads = Tr::kDkvWarps * 32;
  constexpr int kKSteps = D / 16, kNQ = BM / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const float* sLamK = reinterpret_cast<const float*>(smem + S::kLamK);

  const int T = p.T, H = p.H, W = c.W;
  const int h = blockIdx.y, b = blockIdx.z;
  const int k0 = blockIdx.x * BN;
  const int i_last = min(T - 1, k0 + BN - 1 + W - 1);  // the last query that sees a key of this tile
  const int qt_lo = k0 / BM, qt_hi = i_last / BM;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int r0 = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const int64_t bT = int64_t(b) * T;
  const __nv_bfloat16* gQ = p.q + bT * p.q_row_stride + h * D;
  const __nv_bfloat16* gdO = p.dout + bT * p.dout_row_stride + h * D;
  const float* gLam = kGated ? p.lam + bT * H + h : nullptr;
  const float* gLse = p.lse + (int64_t(b) * H + h) * T;
  const float* gDelta = delta + (int64_t(b) * H + h) * T;

  auto load_q = [&](int qt, int stage) {
    const int i0 = qt * BM;
    load_tile_async<BM, D, kThreads>(sbase + S::kQ + stage * BM * D * 2, gQ, p.q_row_stride, i0, T);
    load_tile_async<BM, D, kThreads>(sbase + S::kdO + stage * BM * D * 2, gdO, p.dout_row_stride, i0, T);
    float* f = reinterpret_cast<float*>(smem);
    if (kGated) load_vec_async(f + S::kLamQ / 4 + stage * BM, gLam, H, i0, BM, T, 0.f);
    load_vec_async(f + S::kLse / 4 + stage * BM, gLse, 1, i0, BM, T, 0.f);
    load_vec_async(f + S::kDelta / 4 + stage * BM, gDelta, 1, i0, BM, T, 0.f);
  };
  load_tile_async<BN, D, kThreads>(sbase + S::kK, p.k + bT * p.k_row_stride + h * D, p.k_row_stride, k0, T);
  load_tile_async<BN, D, kThreads>(sbase + S::kV, p.v + bT * p.v_row_stride + h * D, p.v_row_stride, k0, T);
  if (kGated) load_vec_async(reinterpret_cast<float*>(smem + S::kLamK), gLam, H, k0, BN, T, 0.f);
  load_q(qt_lo, 0);
  cp_async_commit();

  const float ref = kGated ? gLam[int64_t(k0) * H] : 0.f;
  float kb[2] = {0.f, 0.f}, dl[2] = {0.f, 0.f};
  float dk[kDB][4], dv[kDB][4];
#pragma unroll
  for (int d = 0; d < kDB; ++d)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[d][e] = dv[d][e] = 0.f;

  for (int qt = qt_lo, stage = 0; qt <= qt_hi; ++qt, stage ^= 1) {
    if (qt < qt_hi) {
      load_q(qt + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kGated && qt == qt_lo) {
      kb[0] = (sLamK[r0 + g] - ref) * kLog2e;
      kb[1] = (sLamK[r0 + g + 8] - ref) * kLog2e;
    }
    const int i0 = qt * BM;
    if (!tile_empty(i0, BM, k0 + r0, 16, T, W)) {
      const uint32_t sQ = sbase + S::kQ + stage * BM * D * 2, sdO = sbase + S::kdO + stage * BM * D * 2;
      const float* lamq = reinterpret_cast<const float*>(smem + S::kLamQ) + stage * BM;
      const float* lse = reinterpret_cast<const float*>(smem + S::kLse) + stage * BM;
      const float* dlt = reinterpret_cast<const float*>(smem + S::kDelta) + stage * BM;

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
  for (int hr = 0; hr < 2; ++hr) {
    dl[hr] += __shfl_xor_sync(0xffffffffu, dl[hr], 1);
    dl[hr] += __shfl_xor_sync(0xffffffffu, dl[hr], 2);
    const int j = k0 + r0 + g + 8 * hr;
    if (kGated && tq == 0 && j < T) p.dlam[(bT + j) * H + h] = dl[hr];
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
  store_rows16<D>(sK, p.dk + bT * p.dk_row_stride + h * D, p.dk_row_stride, k0, r0, T, lane);
  store_rows16<D>(sV, p.dv + bT * p.dv_row_stride + h * D, p.dv_row_stride, k0, r0, T, lane);
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

template <int D, bool kGated>
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
  const int h = blockIdx.y, b = blockIdx.z;
  const int q0 = qt * BM;
  const int q_end = min(T, q0 + BM);
  const int kt_lo = max(0, q0 - W + 1) / BN, kt_hi = (q_end - 1) / BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int r0 = warp * 16 * MT;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const int64_t bT = int64_t(b) * T;
  const __nv_bfloat16* gK = p.k + bT * p.k_row_stride + h * D;
  const __nv_bfloat16* gV = p.v + bT * p.v_row_stride + h * D;
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
  float* delta = p.workspace;
  const int64_t rows = int64_t(p.B) * p.T * p.H;
  attn_delta_kernel<D><<<unsigned((rows + 7) / 8), 256, 0, stream>>>(p, delta);
  CUDA_CHECK_LAUNCH();

  constexpr int kDkvSmem = DkvSmem<D>::kBytes;
  auto dkdv = c.gated ? attn_dkdv_kernel<D, true> : attn_dkdv_kernel<D, false>;
  CUDA_CHECK(cudaFuncSetAttribute(dkdv, cudaFuncAttributeMaxDynamicSharedMemorySize, kDkvSmem));
  const dim3 gkv((p.T + Tr::kDkvBN - 1) / Tr::kDkvBN, p.H, p.B);
  dkdv<<<gkv, Tr::kDkvWarps * 32, kDkvSmem, stream>>>(p, c, delta);
  CUDA_CHECK_LAUNCH();

  constexpr int kDqSmem = DqSmem<D>::kBytes;
  auto dq = c.gated ? attn_dq_kernel<D, true> : attn_dq_kernel<D, false>;
  CUDA_CHECK(cudaFuncSetAttribute(dq, cudaFuncAttributeMaxDynamicSharedMemorySize, kDqSmem));
  const dim3 gq((p.T + Tr::kDqBM - 1) / Tr::kDqBM, p.H, p.B);
  dq<<<gq, Tr::kDqWarps * 32, kDqSmem, stream>>>(p, c, delta);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
