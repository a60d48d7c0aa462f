// Forward attention for sm_90a, FlashAttention-3 structure (docs/kernel_notes.md, "v5: the sm_90a forward").
// Same contract and numerics as attention_fwd_kernel.cuh: CTA = (query tile of 128 rows, query head, batch), key tiles
// of 128 from the causal end down to the window's first tile, base-2 logits, gated bias -(lam_j - ref)*log2e with ref =
// lam at the tile's first query (lam_i left out of the exponent, added back to lse), lse in natural log.
//
// Warpgroup 0 is the producer: one warp loads Q once and K/V tiles through TMA into a 2-stage ring (128-byte
// swizzled, completing on mbarriers) and, gated, writes each key tile's bias into shared memory; its registers go to
// the consumers (setmaxnreg). Warpgroups 1 and 2 each own 64 query rows and run, per key tile i:
//   S_i = Q K_i^T (wgmma, both operands in shared memory)    -- issued, then while it runs:
//   O *= exp2(m_old - m_new) of tile i-1;  O += P_{i-1} V_{i-1} (wgmma, P from registers)
//   wait S_i; softmax of S_i (scale, bias, mask, row max, exp2, row sums) while P_{i-1} V_{i-1} still runs
//   wait P V; release the stages; pack P_i to bf16
// and the two warpgroups take turns issuing (named barriers 1 and 2: ping-pong), so one's softmax overlaps the
// other's matrix products. Stage release: K (and its bias) after the softmax that read it, V after its P V.
#pragma once
#include "kernels/attention_common.cuh"
#include "kernels/cuda_check.h"
#include "kernels/mma_sm80.cuh"
#include "kernels/tensor_map_sm90.h"
#include "kernels/wgmma_sm90.cuh"

namespace gfwa::cuda::detail {

template <int D_>
struct Sm90FwdTraits {
  static constexpr int D = D_;
  static constexpr int BM = 128;          // query rows per CTA, 64 per consumer warpgroup
  static constexpr int BN = 128;          // keys per tile
  static constexpr int kStages = 2;       // K/V ring depth
  static constexpr int kThreads = 384;    // warpgroup 0 produces (one warp works), 1 and 2 consume
  static constexpr int kSlabs = D / 64;   // 64-column slabs per row (128-byte swizzle rows)
  static constexpr int kTileBytes = BN * D * 2;
  // Shared memory from a 1024-byte aligned base (the swizzle atoms need it).
  static constexpr int kQ = 0;                              // BM x D (later: O staging, each warpgroup its rows)
  static constexpr int kK = kQ + BM * D * 2;                // kStages x (BN x D)
  static constexpr int kV = kK + kStages * kTileBytes;      // kStages x (BN x D)
  static constexpr int kKb = kV + kStages * kTileBytes;     // kStages x BN floats: the keys' gate bias (gated)
  static constexpr int kBar = kKb + kStages * BN * 4;       // mbarriers: Q, then full K, full V, empty K, empty V
  static constexpr int kBytes = kBar + (1 + 4 * kStages) * 8 + 1024;  // + slack to align the base
  static_assert(BM == 128 && BN == 128 && D % 64 == 0, "tile shape: 2 consumer warpgroups x 64 rows, 64-column slabs");
};

// Named barriers: 1 + w is consumer warpgroup w's turn to issue; 3 + w its epilogue. 0 is __syncthreads'.
constexpr int kSchedBar = 1, kEpilogueBar = 3;

template <int D, bool kGated>
__global__ void __launch_bounds__(Sm90FwdTraits<D>::kThreads, 1)
    attn_fwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                         const __grid_constant__ CUtensorMap tm_v, const AttnParams p, const AttnConsts c) {
  using Tr = Sm90FwdTraits<D>;
  constexpr int BM = Tr::BM, BN = Tr::BN, S = Tr::kStages, kSlabQ = BM * 128, kSlabKV = BN * 128;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw), sbase = (raw + 1023) & ~1023u;
  unsigned char* smem = smem_raw + (sbase - raw);
  float* sKb = reinterpret_cast<float*>(smem + Tr::kKb);
  const uint32_t bar_q = sbase + Tr::kBar;
  auto full_k = [&](int s) { return bar_q + 8 * (1 + s); };
  auto full_v = [&](int s) { return bar_q + 8 * (1 + S + s); };
  auto empty_k = [&](int s) { return bar_q + 8 * (1 + 2 * S + s); };
  auto empty_v = [&](int s) { return bar_q + 8 * (1 + 3 * S + s); };

  const int T = p.T, H = p.H, W = c.W;
  const int qt = gridDim.x - 1 - blockIdx.x;  // longest causal rows first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / p.Hkv);
  const int q0 = qt * BM, q_end = min(T, q0 + BM);
  const int kt_hi = (q_end - 1) / BN, kt_lo = max(0, q0 - W + 1) / BN, n_tiles = kt_hi - kt_lo + 1;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wg = threadIdx.x >> 7;
  const float* lam = kGated ? p.lam + int64_t(b) * T * H + h : nullptr;  // lam at t: lam[t * H]

  if (threadIdx.x == 0) {
    mbar_init(bar_q, 1);
    for (int s = 0; s < S; ++s) {
      mbar_init(full_k(s), 32);  // every producer lane (each writes part of the key bias)
      mbar_init(full_v(s), 1);
      mbar_init(empty_k(s), 8);  // one arrival per consumer warp
      mbar_init(empty_v(s), 8);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (wg == 0) {
    // ---- producer ----
    setmaxnreg_dec<24>();
    if (warp == 0) {
      if (lane == 0) {
        tma_prefetch_map(&tm_q);
        tma_prefetch_map(&tm_k);
        tma_prefetch_map(&tm_v);
        mbar_arrive_expect_tx(bar_q, BM * D * 2);
        for (int sl = 0; sl < Tr::kSlabs; ++sl) tma_load_4d(sbase + Tr::kQ + sl * kSlabQ, &tm_q, bar_q, 64 * sl, h, q0, b);
      }
      const float ref = kGated ? lam[int64_t(q0) * H] : 0.f;
      for (int i = 0; i < n_tiles; ++i) {
        const int s = i % S, j0 = (kt_hi - i) * BN;
        const uint32_t parity = ((i / S) & 1) ^ 1;  // the consumers' release of this stage's previous use
        mbar_wait(empty_k(s), parity);
        if (kGated)
          for (int r = lane; r < BN; r += 32) {
            const int j = j0 + r;  // keys past T are masked; any finite bias will do
            sKb[s * BN + r] = j < T ? (ref - lam[int64_t(j) * H]) * kLog2e : 0.f;
          }
        if (lane == 0) {
          mbar_arrive_expect_tx(full_k(s), Tr::kTileBytes);
          for (int sl = 0; sl < Tr::kSlabs; ++sl)
            tma_load_4d(sbase + Tr::kK + s * Tr::kTileBytes + sl * kSlabKV, &tm_k, full_k(s), 64 * sl, kvh, j0, b);
        } else {
          mbar_arrive(full_k(s));
        }
        mbar_wait(empty_v(s), parity);
        if (lane == 0) {
          mbar_arrive_expect_tx(full_v(s), Tr::kTileBytes);
          for (int sl = 0; sl < Tr::kSlabs; ++sl)
            tma_load_4d(sbase + Tr::kV + s * Tr::kTileBytes + sl * kSlabKV, &tm_v, full_v(s), 64 * sl, kvh, j0, b);
        }
      }
    }
  } else {
    // ---- consumers ----
    setmaxnreg_inc<240>();
    const int cw = wg - 1, g = lane >> 2, tq = lane & 3;
    const int rw = 64 * cw + 16 * (warp & 3);  // this warp's first row in the CTA tile
    const int ia = q0 + rw + g;                // this thread's query rows: ia, ia + 8
    if (cw == 1) named_bar_arrive(kSchedBar, 256);  // warpgroup 0 issues first

    // Q: this warpgroup's 64 rows, K-major. K: K-major (keys are the n rows). V: N-major (keys are the k rows).
    const uint64_t q_desc = smem_desc_sw128(sbase + Tr::kQ + cw * 64 * 128, 16, 1024);
    const uint64_t k_desc = smem_desc_sw128(sbase + Tr::kK, 16, 1024);
    const uint64_t v_desc = smem_desc_sw128(sbase + Tr::kV, kSlabKV, 1024);

    float sacc[BN / 2], oacc[D / 2];
    uint32_t pb[BN / 16][4];  // P in bf16: k-step kk's A fragment
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, corr[2] = {1.f, 1.f};
    bool rescale = false;
#pragma unroll
    for (int i = 0; i < D / 2; ++i) oacc[i] = 0.f;

    // fence_regs before wgmma_fence: the register writes the fence must order (O rescale, P packing) stay above it.
    auto issue_qk = [&](int s) {
      fence_regs(sacc);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t q_off = (kk / 4) * kSlabQ + (kk % 4) * 32;
        const uint32_t k_off = s * Tr::kTileBytes + (kk / 4) * kSlabKV + (kk % 4) * 32;
        wgmma_m64n128k16_ss<0, 0>(sacc, q_desc + (q_off >> 4), k_desc + (k_off >> 4), kk > 0);
      }
      wgmma_commit();
    };
    auto issue_pv = [&](int s) {
      fence_regs(oacc);
      fence_regs(pb);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        const uint64_t vd = v_desc + ((s * Tr::kTileBytes + kk * 16 * 128) >> 4);
        if constexpr (D == 128)
          wgmma_m64n128k16_rs<1>(oacc, pb[kk], vd);
        else
          wgmma_m64n64k16_rs<1>(oacc, pb[kk], vd);
      }
      wgmma_commit();
    };
    // O *= exp2(m_old - m_new) for the tile whose P V comes next; skipped when no row maximum of the warp changed.
    auto rescale_o = [&] {
      if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          oacc[4 * n] *= corr[0];
          oacc[4 * n + 1] *= corr[0];
          oacc[4 * n + 2] *= corr[1];
          oacc[4 * n + 3] *= corr[1];
        }
      }
    };
    // Tile i's scores (stage s) -> P (fp32, in sacc); updates m, l and the correction for O.
    auto softmax = [&](int i, int s) {
      const int j0 = (kt_hi - i) * BN;
      const bool masked = tile_needs_mask(q0 + rw, 16, j0, BN, T, W);
      float mx[2] = {m[0], m[1]};
#pragma unroll
      for (int n = 0; n < BN / 8; ++n) {
        float2 kb = make_float2(0.f, 0.f);
        if (kGated) kb = *reinterpret_cast<const float2*>(sKb + s * BN + 8 * n + 2 * tq);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hr = e >> 1, e2 = e & 1;
          float v = kGated ? fmaf(sacc[4 * n + e], c.scale_log2, e2 ? kb.y : kb.x) : sacc[4 * n + e] * c.scale_log2;
          if (masked && !visible(ia + 8 * hr, j0 + 8 * n + 2 * tq + e2, T, W)) v = -INFINITY;
          sacc[4 * n + e] = v;
          mx[hr] = fmaxf(mx[hr], v);
        }
      }
      float base[2];
      rescale = false;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float x = mx[hr];
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
        base[hr] = x == -INFINITY ? 0.f : x;  // a row with nothing visible yet stays all-zero
        corr[hr] = exp2_approx(m[hr] - base[hr]);
        rescale |= x != m[hr];
        m[hr] = x;
        l[hr] *= corr[hr];
      }
#pragma unroll
      for (int n = 0; n < BN / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float pv = exp2_approx(sacc[4 * n + e] - base[e >> 1]);
          l[e >> 1] += pv;
          sacc[4 * n + e] = pv;
        }
    };
    auto pack_p = [&] {
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        pb[kk][0] = pack_bf16(sacc[8 * kk], sacc[8 * kk + 1]);
        pb[kk][1] = pack_bf16(sacc[8 * kk + 2], sacc[8 * kk + 3]);
        pb[kk][2] = pack_bf16(sacc[8 * kk + 4], sacc[8 * kk + 5]);
        pb[kk][3] = pack_bf16(sacc[8 * kk + 6], sacc[8 * kk + 7]);
      }
    };
    auto release = [&](uint32_t bar) {
      __syncwarp();
      if (lane == 0) mbar_arrive(bar);
    };

    mbar_wait(bar_q, 0);
    // Tile 0: Q K^T and softmax only.
    mbar_wait(full_k(0), 0);
    named_bar_sync(kSchedBar + cw, 256);
    issue_qk(0);
    if (!(cw == 1 && n_tiles == 1)) named_bar_arrive(kSchedBar + 1 - cw, 256);  // the other's turn (see below)
    wgmma_wait<0>();
    fence_regs(sacc);
    softmax(0, 0);
    release(empty_k(0));
    pack_p();
    for (int i = 1; i < n_tiles; ++i) {
      const int s = i % S, sp = (i - 1) % S;
      mbar_wait(full_k(s), (i / S) & 1);
      named_bar_sync(kSchedBar + cw, 256);
      issue_qk(s);
      rescale_o();
      mbar_wait(full_v(sp), ((i - 1) / S) & 1);
      issue_pv(sp);
      // Warpgroup 1 skips its last hand-over: warpgroup 0 has no turn left to take it (each waits n_tiles times;
      // warpgroup 1's first pass was handed over before the loop).
      if (!(cw == 1 && i == n_tiles - 1)) named_bar_arrive(kSchedBar + 1 - cw, 256);
      wgmma_wait<1>();  // S_i done, P_{i-1} V_{i-1} may still run
      fence_regs(sacc);
      softmax(i, s);
      release(empty_k(s));
      wgmma_wait<0>();
      fence_regs(oacc);
      fence_regs(pb);
      release(empty_v(sp));
      pack_p();
    }
    rescale_o();
    const int sl = (n_tiles - 1) % S;
    mbar_wait(full_v(sl), ((n_tiles - 1) / S) & 1);
    issue_pv(sl);
    wgmma_wait<0>();
    fence_regs(oacc);

    // Epilogue: lse per row; O normalised, staged as bf16 in this warpgroup's rows of the Q tile (same swizzle),
    // then written out 16 bytes per thread.
    float* lse = p.lse + (int64_t(b) * H + h) * T;
    const float ref = kGated ? lam[int64_t(q0) * H] : 0.f;
    float inv[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      l[hr] = quad_sum(l[hr]);
      inv[hr] = l[hr] > 0.f ? 1.f / l[hr] : 0.f;
      const int i = ia + 8 * hr;
      if (tq == 0 && i < T) {
        const float mm = m[hr] == -INFINITY ? 0.f : m[hr];
        const float lam_i = kGated ? lam[int64_t(i) * H] - ref : 0.f;  // the row constant left out of the exponent
        lse[i] = (mm + log2f(l[hr])) * kLn2 + lam_i;
      }
    }
    unsigned char* sO = smem + Tr::kQ;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int row = rw + g + 8 * hr;  // row & 7 == g
        *reinterpret_cast<uint32_t*>(sO + (n / 8) * kSlabQ + row * 128 + (((n % 8) ^ g) << 4) + 4 * tq) =
            pack_bf16(oacc[4 * n + 2 * hr] * inv[hr], oacc[4 * n + 2 * hr + 1] * inv[hr]);
      }
    named_bar_sync(kEpilogueBar + cw, 128);
    __nv_bfloat16* gO = p.o + int64_t(b) * T * p.o_row_stride + h * D;
    constexpr int kChunks = D / 8;
    for (int idx = threadIdx.x & 127; idx < 64 * kChunks; idx += 128) {
      const int row = 64 * cw + idx / kChunks, cc = idx % kChunks, t = q0 + row;
      if (t < T)
        *reinterpret_cast<uint4*>(gO + int64_t(t) * p.o_row_stride + cc * 8) =
            *reinterpret_cast<const uint4*>(sO + (cc / 8) * kSlabQ + row * 128 + (((cc % 8) ^ (row & 7)) << 4));
    }
  }
}

template <int D>
void launch_attn_fwd_sm90(const AttnParams& p, const AttnConsts& c, cudaStream_t stream) {
  using Tr = Sm90FwdTraits<D>;
  const CUtensorMap q = attn_tensor_map(p.q, p.q_row_stride, p.B, p.T, p.H, D, Tr::BM);
  const CUtensorMap k = attn_tensor_map(p.k, p.k_row_stride, p.B, p.T, p.Hkv, D, Tr::BN);
  const CUtensorMap v = attn_tensor_map(p.v, p.v_row_stride, p.B, p.T, p.Hkv, D, Tr::BN);
  auto kernel = c.gated ? attn_fwd_sm90_kernel<D, true> : attn_fwd_sm90_kernel<D, false>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kBytes));
  const dim3 grid((p.T + Tr::BM - 1) / Tr::BM, p.H, p.B);
  kernel<<<grid, Tr::kThreads, Tr::kBytes, stream>>>(q, k, v, p, c);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
