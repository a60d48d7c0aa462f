// Forward attention, FlashAttention-2 structure with mma.sync (gatedfwa.md section 4).
// CTA = (query tile of BM rows, head, batch); warp w owns query rows 16w..16w+15 and keeps its Q fragments,
// O accumulator, running max and sum in registers. Key tiles run from the causal end down to the first tile
// of the window (O(W) tiles, never O(T)); K/V/lam tiles are double-buffered with cp.async.
// Logits in base 2: s2 = qk*scale*log2e + (lam_i - ref)*log2e - (lam_j - ref)*log2e, ref = lam at the tile's
// first query, so the bias terms stay small when |lam| grows like T (long sequences keep their digits).
#pragma once
#include "kernels/attention_common.cuh"
#include "kernels/cuda_check.h"
#include "kernels/mma_sm80.cuh"

namespace gfwa::cuda::detail {

template <int D>
struct FwdSmem {
  using Tr = AttnTraits<D>;
  static constexpr int BM = Tr::kFwdBM, BN = Tr::kFwdBN;
  static constexpr int kQ = 0;                              // BM x D bf16 (later: O staging)
  static constexpr int kK = kQ + BM * D * 2;                // 2 stages of BN x D
  static constexpr int kV = kK + 2 * BN * D * 2;            // 2 stages of BN x D
  static constexpr int kLamK = kV + 2 * BN * D * 2;         // 2 stages of BN floats
  static constexpr int kLamQ = kLamK + 2 * BN * 4;          // BM floats
  static constexpr int kBytes = kLamQ + BM * 4;
};

template <int D>
__global__ void __launch_bounds__(AttnTraits<D>::kFwdWarps * 32)
    attn_fwd_kernel(const AttnParams p, const AttnConsts c) {
  using Tr = AttnTraits<D>;
  using S = FwdSmem<D>;
  constexpr int BM = Tr::kFwdBM, BN = Tr::kFwdBN, kThreads = Tr::kFwdWarps * 32;
  constexpr int kKSteps = D / 16, kNB = BN / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  float* sLamK = reinterpret_cast<float*>(smem + S::kLamK);
  float* sLamQ = reinterpret_cast<float*>(smem + S::kLamQ);

  const int T = p.T, H = p.H, W = c.W;
  const int qt = gridDim.x - 1 - blockIdx.x;  // longest causal rows first
  const int h = blockIdx.y, b = blockIdx.z;
  const int q0 = qt * BM;
  const int q_end = min(T, q0 + BM);
  const int kt_lo = max(0, q0 - W + 1) / BN, kt_hi = (q_end - 1) / BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;

  const __nv_bfloat16* gQ = p.q + int64_t(b) * T * p.q_row_stride + h * D;
  const __nv_bfloat16* gK = p.k + int64_t(b) * T * p.k_row_stride + h * D;
  const __nv_bfloat16* gV = p.v + int64_t(b) * T * p.v_row_stride + h * D;
  const float* gLam = c.gated ? p.lam + int64_t(b) * T * H + h : nullptr;

  auto load_kv = [&](int kt, int stage) {
    load_tile_async<BN, D, kThreads>(sbase + S::kK + stage * BN * D * 2, gK, p.k_row_stride, kt * BN, T);
    load_tile_async<BN, D, kThreads>(sbase + S::kV + stage * BN * D * 2, gV, p.v_row_stride, kt * BN, T);
    if (c.gated) load_vec_async(sLamK + stage * BN, gLam, H, kt * BN, BN, T, 0.f);
  };
  load_tile_async<BM, D, kThreads>(sbase + S::kQ, gQ, p.q_row_stride, q0, T);
  if (c.gated) load_vec_async(sLamQ, gLam, H, q0, BM, T, 0.f);
  load_kv(kt_hi, 0);
  cp_async_commit();

  const float ref = c.gated ? gLam[int64_t(q0) * H] : 0.f;
  const int r0 = warp * 16;  // this warp's first row in the tile
  uint32_t qf[kKSteps][4];
  float o[kDB][4];
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, qb[2] = {0.f, 0.f};
#pragma unroll
  for (int d = 0; d < kDB; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;

  for (int kt = kt_hi, stage = 0; kt >= kt_lo; --kt, stage ^= 1) {
    if (kt > kt_lo) {
      load_kv(kt - 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kt == kt_hi) {
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) ldsm_x4(qf[kk], a_addr<D>(sbase + S::kQ, r0, kk, lane));
      if (c.gated) {
        qb[0] = (sLamQ[r0 + g] - ref) * kLog2e;
        qb[1] = (sLamQ[r0 + g + 8] - ref) * kLog2e;
      }
    }
    const uint32_t sK = sbase + S::kK + stage * BN * D * 2, sV = sbase + S::kV + stage * BN * D * 2;
    const float* lamk = sLamK + stage * BN;

    float s[kNB][4];
#pragma unroll
    for (int n = 0; n < kNB; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk)
#pragma unroll
      for (int n2 = 0; n2 < kNB / 2; ++n2) {
        uint32_t bf[4];
        ldsm_x4(bf, bn_addr<D>(sK, n2 * 16, kk, lane));
        mma_bf16(s[2 * n2], qf[kk], bf[0], bf[1]);
        mma_bf16(s[2 * n2 + 1], qf[kk], bf[2], bf[3]);
      }

    const int j0 = kt * BN;
    const bool masked = tile_needs_mask(q0 + r0, 16, j0, BN, T, W);
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int n = 0; n < kNB; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = n * 8 + 2 * tq + (e & 1), hr = e >> 1;
        float v = s[n][e] * c.scale_log2 + qb[hr];
        if (c.gated) v -= (lamk[col] - ref) * kLog2e;
        if (masked && !visible(q0 + r0 + g + 8 * hr, j0 + col, T, W)) v = -INFINITY;
        s[n][e] = v;
        mx[hr] = fmaxf(mx[hr], v);
      }
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 1));
      mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 2));
    }
    float base[2], corr[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      base[hr] = mx[hr] == -INFINITY ? 0.f : mx[hr];  // a row with nothing visible yet: keep it all-zero
      corr[hr] = exp2_approx(m[hr] - base[hr]);
      m[hr] = mx[hr];
      l[hr] *= corr[hr];
    }
#pragma unroll
    for (int d = 0; d < kDB; ++d) {
      o[d][0] *= corr[0];
      o[d][1] *= corr[0];
      o[d][2] *= corr[1];
      o[d][3] *= corr[1];
    }
#pragma unroll
    for (int n = 0; n < kNB; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pv = exp2_approx(s[n][e] - base[e >> 1]);
        s[n][e] = pv;
        l[e >> 1] += pv;
      }

#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int d2 = 0; d2 < kDB / 2; ++d2) {
        uint32_t bf[4];
        ldsm_x4_trans(bf, bk_addr<D>(sV, kk, d2 * 16, lane));
        mma_bf16(o[2 * d2], a, bf[0], bf[1]);
        mma_bf16(o[2 * d2 + 1], a, bf[2], bf[3]);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  float inv[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
    l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
    inv[hr] = l[hr] > 0.f ? 1.f / l[hr] : 0.f;
  }
  // O goes out through this warp's own rows of the Q tile (only this warp ever read them).
  __nv_bfloat16* sO = reinterpret_cast<__nv_bfloat16*>(smem + S::kQ);
#pragma unroll
  for (int d = 0; d < kDB; ++d) {
    const float oc[4] = {o[d][0] * inv[0], o[d][1] * inv[0], o[d][2] * inv[1], o[d][3] * inv[1]};
    stage_c<D>(sO, r0, d * 8 + 2 * tq, oc, 1.f, lane);
  }
  __syncwarp();
  __nv_bfloat16* gO = p.o + int64_t(b) * T * p.o_row_stride + h * D;
  store_rows16<D>(sO, gO, p.o_row_stride, q0, r0, T, lane);
  if (tq == 0) {
    float* lse = p.lse + (int64_t(b) * H + h) * T;
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int i = q0 + r0 + g + 8 * hr;
      const float mm = m[hr] == -INFINITY ? 0.f : m[hr];
      if (i < T) lse[i] = (mm + log2f(l[hr])) * kLn2;
    }
  }
}

template <int D>
void launch_attn_fwd(const AttnParams& p, const AttnConsts& c, cudaStream_t stream) {
  using Tr = AttnTraits<D>;
  constexpr int kSmem = FwdSmem<D>::kBytes;
  CUDA_CHECK(cudaFuncSetAttribute(attn_fwd_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const dim3 grid((p.T + Tr::kFwdBM - 1) / Tr::kFwdBM, p.H, p.B);
  attn_fwd_kernel<D><<<grid, Tr::kFwdWarps * 32, kSmem, stream>>>(p, c);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
