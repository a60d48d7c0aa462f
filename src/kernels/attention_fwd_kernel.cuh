// Forward attention, FlashAttention-2 structure with mma.sync (docs/gatedfwa.md section 4).
// CTA = (query tile of BM rows, query head, batch), reading K/V head h / (H/Hkv) (grouped-query attention: the
// CTAs of a group read the same K/V rows, no copy); warp w owns kMT m-tiles of 16 query rows and keeps their O
// accumulators, running max and sum in registers; Q fragments are re-read from shared memory per tile.
// Key tiles run from the causal end down to the first tile of the window (O(W) tiles, never O(T)); K/V/lam
// tiles are double-buffered with cp.async. A warp skips tiles none of its rows can see.
// Logits in base 2. Gated: v = qk*scale*log2e - (lam_j - ref)*log2e, ref = lam at the tile's first query:
// the query's own +lam_i is a per-row constant that softmax ignores, so it is left out of the exponent and
// added back to lse only; rebasing keeps the bias small when |lam| grows like T.
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
  static constexpr int kBytes = kLamK + 2 * BN * 4;
};

template <int D, bool kGated, bool kGrouped>
__global__ void __launch_bounds__(AttnTraits<D>::kFwdWarps * 32)
    attn_fwd_kernel(const AttnParams p, const AttnConsts c) {
  using Tr = AttnTraits<D>;
  using S = FwdSmem<D>;
  constexpr int BM = Tr::kFwdBM, BN = Tr::kFwdBN, MT = Tr::kFwdMT, kThreads = Tr::kFwdWarps * 32;
  constexpr int kKSteps = D / 16, kNB = BN / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  float* sLamK = reinterpret_cast<float*>(smem + S::kLamK);

  const int T = p.T, H = p.H, W = c.W;
  const int qt = gridDim.x - 1 - blockIdx.x;  // longest causal rows first
  // kGrouped: H > Hkv, K/V head h / (H/Hkv); otherwise kvh is h at compile time (see attn_dq_kernel).
  const int h = blockIdx.y, b = blockIdx.z, kvh = kGrouped ? h / (H / p.Hkv) : h;
  const int q0 = qt * BM;
  const int q_end = min(T, q0 + BM);
  const int kt_lo = max(0, q0 - W + 1) / BN, kt_hi = (q_end - 1) / BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int r0 = warp * 16 * MT;  // this warp's first row in the tile
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const __nv_bfloat16* gQ = p.q + int64_t(b) * T * p.q_row_stride + h * D;
  const __nv_bfloat16* gK = p.k + int64_t(b) * T * p.k_row_stride + kvh * D;
  const __nv_bfloat16* gV = p.v + int64_t(b) * T * p.v_row_stride + kvh * D;
  const float* gLam = kGated ? p.lam + int64_t(b) * T * H + h : nullptr;

  auto load_kv = [&](int kt, int stage) {
    load_tile_async<BN, D, kThreads>(sbase + S::kK + stage * BN * D * 2, gK, p.k_row_stride, kt * BN, T);
    load_tile_async<BN, D, kThreads>(sbase + S::kV + stage * BN * D * 2, gV, p.v_row_stride, kt * BN, T);
    if (kGated) load_vec_async(sLamK + stage * BN, gLam, H, kt * BN, BN, T, 0.f);
  };
  load_tile_async<BM, D, kThreads>(sbase + S::kQ, gQ, p.q_row_stride, q0, T);
  load_kv(kt_hi, 0);
  cp_async_commit();

  const float ref = kGated ? gLam[int64_t(q0) * H] : 0.f;
  float o[MT][kDB][4], m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
    for (int d = 0; d < kDB; ++d) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;
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

      float s[MT][kNB][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < kNB; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        uint32_t qa[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ldsm_x4(qa[mt], a_addr<D>(sbase + S::kQ, r0 + 16 * mt, kk, aoff));
#pragma unroll
        for (int n2 = 0; n2 < kNB / 2; ++n2) {
          uint32_t bf[4];
          ldsm_x4(bf, bn_addr<D>(sK, n2 * 16, kk, bnoff));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_bf16(s[mt][2 * n2], qa[mt], bf[0], bf[1]);
            mma_bf16(s[mt][2 * n2 + 1], qa[mt], bf[2], bf[3]);
          }
        }
      }

      // This thread's key columns: n*8 + 2*tq + {0, 1}. Gated: their bias -(lam_j - ref)*log2e, computed
      // per column right where it is used (an array of them would cost 16 registers next to S and O).
      const bool masked = tile_needs_mask(q0 + r0, 16 * MT, j0, BN, T, W);
      float mx[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mx[mt][0] = m[mt][0];
        mx[mt][1] = m[mt][1];
      }
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
              float v = kGated ? fmaf(s[mt][n][e], c.scale_log2, kb) : s[mt][n][e] * c.scale_log2;
              if (masked && !visible(q0 + r0 + 16 * mt + g + 8 * hr, j0 + col, T, W)) v = -INFINITY;
              s[mt][n][e] = v;
              mx[mt][hr] = fmaxf(mx[mt][hr], v);
            }
        }
      bool rescale = false;
      float base[MT][2], corr[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          float x = mx[mt][hr];
          x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
          x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
          base[mt][hr] = x == -INFINITY ? 0.f : x;  // a row with nothing visible yet: keep it all-zero
          corr[mt][hr] = exp2_approx(m[mt][hr] - base[mt][hr]);
          rescale |= x != m[mt][hr];
          m[mt][hr] = x;
          l[mt][hr] *= corr[mt][hr];
        }
      if (__any_sync(0xffffffffu, rescale)) {  // once the window's maximum is found, most tiles skip this
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int d = 0; d < kDB; ++d) {
            o[mt][d][0] *= corr[mt][0];
            o[mt][d][1] *= corr[mt][0];
            o[mt][d][2] *= corr[mt][1];
            o[mt][d][3] *= corr[mt][1];
          }
      }
      // P = exp2(v - max), packed to bf16 as soon as it exists (half the registers of the fp32 scores).
      uint32_t pk[MT][kNB][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < kNB; ++n) {
          float pv[4];
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            pv[e] = exp2_approx(s[mt][n][e] - base[mt][e >> 1]);
            l[mt][e >> 1] += pv[e];
          }
          pk[mt][n][0] = pack_bf16(pv[0], pv[1]);
          pk[mt][n][1] = pack_bf16(pv[2], pv[3]);
        }

#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
#pragma unroll
        for (int d2 = 0; d2 < kDB / 2; ++d2) {
          uint32_t bf[4];
          ldsm_x4_trans(bf, bk_addr<D>(sV, kk, d2, bkoff));
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const uint32_t a[4] = {pk[mt][2 * kk][0], pk[mt][2 * kk][1], pk[mt][2 * kk + 1][0], pk[mt][2 * kk + 1][1]};
            mma_bf16(o[mt][2 * d2], a, bf[0], bf[1]);
            mma_bf16(o[mt][2 * d2 + 1], a, bf[2], bf[3]);
          }
        }
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  // O goes out through this warp's own rows of the Q tile (only this warp ever read them).
  __nv_bfloat16* sO = reinterpret_cast<__nv_bfloat16*>(smem + S::kQ);
  float* lse = p.lse + (int64_t(b) * H + h) * T;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float inv[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      l[mt][hr] = quad_sum(l[mt][hr]);
      inv[hr] = l[mt][hr] > 0.f ? 1.f / l[mt][hr] : 0.f;
      const int i = q0 + r0 + 16 * mt + g + 8 * hr;
      if (tq == 0 && i < T) {
        const float mm = m[mt][hr] == -INFINITY ? 0.f : m[mt][hr];
        const float lam_i = kGated ? gLam[int64_t(i) * H] - ref : 0.f;  // the row constant left out above
        lse[i] = (mm + log2f(l[mt][hr])) * kLn2 + lam_i;
      }
    }
#pragma unroll
    for (int d = 0; d < kDB; ++d) {
      const float oc[4] = {o[mt][d][0] * inv[0], o[mt][d][1] * inv[0], o[mt][d][2] * inv[1], o[mt][d][3] * inv[1]};
      stage_c<D>(sO, r0 + 16 * mt, d * 8 + 2 * tq, oc, 1.f, lane);
    }
  }
  __syncwarp();
  __nv_bfloat16* gO = p.o + int64_t(b) * T * p.o_row_stride + h * D;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) store_rows16<D>(sO, gO, p.o_row_stride, q0, r0 + 16 * mt, T, lane);
}

template <int D>
void launch_attn_fwd(const AttnParams& p, const AttnConsts& c, cudaStream_t stream) {
  using Tr = AttnTraits<D>;
  constexpr int kSmem = FwdSmem<D>::kBytes;
  auto kernel = c.gated ? (c.grouped ? attn_fwd_kernel<D, true, true> : attn_fwd_kernel<D, true, false>)
                        : (c.grouped ? attn_fwd_kernel<D, false, true> : attn_fwd_kernel<D, false, false>);
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  const dim3 grid((p.T + Tr::kFwdBM - 1) / Tr::kFwdBM, p.H, p.B);
  kernel<<<grid, Tr::kFwdWarps * 32, kSmem, stream>>>(p, c);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
