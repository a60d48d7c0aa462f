// Forward attention for sm_90a, FlashAttention-3 structure (docs/kernel_notes.md, "v5: the sm_90a forward").
// Same contract and numerics as attention_fwd_kernel.cuh: work item = (query tile of 128 rows, query head, batch),
// key tiles of 128 from the causal end down to the window's first tile, base-2 logits, gated bias -(lam_j - ref)*log2e
// with ref = lam at the tile's first query (lam_i left out of the exponent, added back to lse), lse in natural log.
//
// Warpgroup 0 is the producer: one warp loads each item's Q and its K/V tiles through TMA into a 2-stage ring
// (128-byte swizzled, completing on mbarriers) and, gated, writes each key tile's bias into shared memory; its
// registers go to the consumers (setmaxnreg, the schedule's split: 24 / 240 per tile, 40 / 232 persistent).
// Warpgroups 1 and 2 each own 64 query rows and run, per key tile i:
//   S_i = Q K_i^T (wgmma, both operands in shared memory)    -- issued, then while it runs:
//   O *= exp2(m_old - m_new) of tile i-1;  O += P_{i-1} V_{i-1} (wgmma, P from registers)
//   wait S_i; softmax of S_i (scale, bias, mask, row max, exp2, row sums) while P_{i-1} V_{i-1} still runs
//   wait P V; release the stages; pack P_i to bf16
// and the two warpgroups take turns issuing (named barriers 1 and 2: ping-pong), so one's softmax overlaps the
// other's matrix products. Stage release: V after its P V; K (and its bias) after the softmax that read it (per
// tile), or as soon as S is done with the biases in a ring one slot deeper (kEarlyK, FlashAttention-3's order;
// persistent).
//
// Work items are (query tile, head, batch); a CTA runs items blockIdx.x, blockIdx.x + gridDim.x, ... The two
// schedules (AttnParams::sm90_schedule, docs/kernel_notes.md "v7") differ in the grid, the Q buffers, the K release
// and the register split: one CTA per item (v5), or a persistent grid of one CTA per SM whose producer loads the next
// item's Q (into the other Q buffer, during this item's epilogue too) and K/V while the consumers finish this one.
// The ring position and the Q buffer uses count on across items, so the barriers' phases simply continue.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/attention_common.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_facts.h"
#include "kernels/mma_sm80.cuh"
#include "kernels/tensor_map_sm90.h"
#include "kernels/wgmma_sm90.cuh"

namespace gfwa::cuda::detail {

// Kernel traits: everything a schedule fixes (the tile shape, Q buffers, K release, grid, register split) and the
// shared-memory layout that follows.
template <int D_, int kQBufs_, bool kEarlyK_, bool kPersistent_, int kProducerRegs_, int kConsumerRegs_>
struct Sm90FwdTraits {
  static constexpr int D = D_;
  static constexpr int BM = 128;          // query rows per item, 64 per consumer warpgroup
  static constexpr int BN = 128;          // keys per tile
  static constexpr int kStages = 2;       // K/V ring depth (a third stage measured no faster: kernel_notes.md v7)
  static constexpr int kQBufs = kQBufs_;  // Q buffers: 2 lets the next item's Q load during this one
  // K released as soon as S = Q K^T is done (FlashAttention-3), not after the softmax: the keys' biases, which the
  // softmax reads, then need a ring of kStages + 1 (the producer writes tile t's after tile t - kStages' release,
  // which each warp gives after its softmax of tile t - kStages - 1, the slot's previous user).
  static constexpr bool kEarlyK = kEarlyK_;
  static constexpr int kKbSlots = kEarlyK ? kStages + 1 : kStages;
  static constexpr bool kPersistent = kPersistent_;  // one CTA per SM over many items, or one CTA per item
  static constexpr int kThreads = 384;    // warpgroup 0 produces (one warp works), 1 and 2 consume
  // setmaxnreg: the producer warpgroup gives registers to the two consumer warpgroups (multiples of 8, 24-256, and
  // all three warpgroups within the SM's 64K registers: one CTA per SM).
  static constexpr int kProducerRegs = kProducerRegs_, kConsumerRegs = kConsumerRegs_;
  static constexpr int kSlabs = D / 64;   // 64-column slabs per row (128-byte swizzle rows)
  static constexpr int kTileBytes = BN * D * 2, kQBytes = BM * D * 2;
  // Shared memory from a 1024-byte aligned base (the swizzle atoms need it).
  static constexpr int kQ = 0;                              // kQBufs x (BM x D); each later its item's O staging
  static constexpr int kK = kQ + kQBufs * kQBytes;          // kStages x (BN x D)
  static constexpr int kV = kK + kStages * kTileBytes;      // kStages x (BN x D)
  static constexpr int kKb = kV + kStages * kTileBytes;     // kKbSlots x BN floats: the keys' gate bias (gated)
  static constexpr int kBar = kKb + kKbSlots * BN * 4;      // mbarriers: Q full, Q empty, K/V full, K/V empty
  static constexpr int kBytes = kBar + (2 * kQBufs + 4 * kStages) * 8 + 1024;  // + slack to align the base
  static_assert(BM == 128 && BN == 128 && D % 64 == 0, "tile shape: 2 consumer warpgroups x 64 rows, 64-column slabs");
  static_assert(kBytes <= 227 * 1024, "more shared memory than a CTA may have");
  static_assert(kProducerRegs % 8 == 0 && kConsumerRegs % 8 == 0 && kProducerRegs >= 24 && kConsumerRegs <= 256,
                "setmaxnreg counts: multiples of 8 in 24..256");
  static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= 65536, "register split over the SM's 64K registers");
};

// The schedules (AttnParams::sm90_schedule, docs/kernel_notes.md v7). Per tile: one Q buffer, K released after the
// softmax, the v5 split. Persistent: two Q buffers and early K release (room for both at D 128 with a 2-stage ring);
// its producer's item loop needs 40 registers (24 spilled in the gated D 64 build), the consumers get 232.
template <int D, Sm90FwdSchedule kSchedule>
struct Sm90FwdSchedTraits;
template <int D>
struct Sm90FwdSchedTraits<D, Sm90FwdSchedule::per_tile> : Sm90FwdTraits<D, 1, false, false, 24, 240> {};
template <int D>
struct Sm90FwdSchedTraits<D, Sm90FwdSchedule::persistent> : Sm90FwdTraits<D, 2, true, true, 40, 232> {};

// Work item `item` -> (query tile, head, batch). Items come in groups of G (batch, head) pairs (G = 1: v5's order);
// inside a group the query tiles go from the last to the first (the last see the most keys: longest first, for the
// balance of a persistent grid), each over the group's pairs. G is chosen so that a group's K/V stays in L2.
struct Sm90FwdItem {
  int qt, h, b;
};
__device__ __forceinline__ Sm90FwdItem sm90_fwd_item(int item, int nq, int H, int n_hb, int G) {
  const int group = item / (G * nq), r = item - group * G * nq;
  const int g0 = group * G, gs = min(G, n_hb - g0);
  const int hb = g0 + r % gs;
  return {nq - 1 - r / gs, hb % H, hb / H};
}

// Named barriers: 1 + w is consumer warpgroup w's turn to issue; 3 + w its epilogue. 0 is __syncthreads'.
constexpr int kSchedBar = 1, kEpilogueBar = 3;

template <int D, Sm90FwdSchedule kSchedule, bool kGated>
__global__ void __launch_bounds__(Sm90FwdSchedTraits<D, kSchedule>::kThreads, 1)
    attn_fwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                         const __grid_constant__ CUtensorMap tm_v, const AttnParams p, const AttnConsts c, int G) {
  using Tr = Sm90FwdSchedTraits<D, kSchedule>;
  constexpr int BM = Tr::BM, BN = Tr::BN, S = Tr::kStages, QB = Tr::kQBufs, KB = Tr::kKbSlots;
  constexpr int kSlabQ = BM * 128, kSlabKV = BN * 128;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw), sbase = (raw + 1023) & ~1023u;
  unsigned char* smem = smem_raw + (sbase - raw);
  float* sKb = reinterpret_cast<float*>(smem + Tr::kKb);
  const uint32_t bar0 = sbase + Tr::kBar;
  auto full_q = [&](int qb) { return bar0 + 8 * qb; };
  auto empty_q = [&](int qb) { return bar0 + 8 * (QB + qb); };
  auto full_k = [&](int s) { return bar0 + 8 * (2 * QB + s); };
  auto full_v = [&](int s) { return bar0 + 8 * (2 * QB + S + s); };
  auto empty_k = [&](int s) { return bar0 + 8 * (2 * QB + 2 * S + s); };
  auto empty_v = [&](int s) { return bar0 + 8 * (2 * QB + 3 * S + s); };

  const int T = p.T, H = p.H, W = c.W, nq = (T + BM - 1) / BM, n_hb = p.B * H, n_items = nq * n_hb;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wg = threadIdx.x >> 7;
  // An item's key tiles: from the causal end down to the window's first tile.
  struct Span {
    int q0, h, b, kt_hi, n_tiles;
  };
  auto span = [&](int item) {
    const Sm90FwdItem w = sm90_fwd_item(item, nq, H, n_hb, G);
    const int q0 = w.qt * BM, kt_hi = (min(T, q0 + BM) - 1) / BN, kt_lo = max(0, q0 - W + 1) / BN;
    return Span{q0, w.h, w.b, kt_hi, kt_hi - kt_lo + 1};
  };
  // lam at t for the item's (batch, head): lam[t * H]
  auto lam_row = [&](const Span& w) { return p.lam + int64_t(w.b) * T * H + w.h; };

  if (threadIdx.x == 0) {
    for (int qb = 0; qb < QB; ++qb) {
      mbar_init(full_q(qb), 1);
      mbar_init(empty_q(qb), 8);  // one arrival per consumer warp, after its epilogue's reads of the buffer
    }
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
    setmaxnreg_dec<Tr::kProducerRegs>();
    if (warp == 0) {
      if (lane == 0) {
        tma_prefetch_map(&tm_q);
        tma_prefetch_map(&tm_k);
        tma_prefetch_map(&tm_v);
      }
      // Lanes 1-31 wait only where their own arrivals gate the barrier's next phase (empty K: the consumers cannot
      // release K tile t + S before these lanes arrive on its full barrier). A parity wait on a barrier that may run
      // two phases ahead (empty V: its next phase needs only lane 0's V load, and the consumers release an item's
      // last V without needing any later K) can miss its phase and hang if the lanes fall behind lane 0.
      int it = 0;  // key tiles loaded so far: ring stage it % S, use it / S
      for (int item = blockIdx.x, k = 0; item < n_items; item += gridDim.x, ++k) {
        const Span w = span(item);
        const int kvh = w.h / (H / p.Hkv);
        const float ref = kGated ? lam_row(w)[int64_t(w.q0) * H] : 0.f;
        for (int i = 0; i < w.n_tiles; ++i, ++it) {
          const int s = it % S, j0 = (w.kt_hi - i) * BN;
          const uint32_t parity = ((it / S) & 1) ^ 1;  // the consumers' release of this stage's previous use
          mbar_wait(empty_k(s), parity);
          if (kGated)
            for (int r = lane; r < BN; r += 32) {
              const int j = j0 + r;  // keys past T are masked; any finite bias will do
              sKb[(it % KB) * BN + r] = j < T ? (ref - lam_row(w)[int64_t(j) * H]) * kLog2e : 0.f;
            }
          if (lane == 0) {
            mbar_arrive_expect_tx(full_k(s), Tr::kTileBytes);
            for (int sl = 0; sl < Tr::kSlabs; ++sl)
              tma_load_4d(sbase + Tr::kK + s * Tr::kTileBytes + sl * kSlabKV, &tm_k, full_k(s), 64 * sl, kvh, j0,
                          w.b);
            // Q after the item's first K tile: with one Q buffer the wait below lasts until the previous item's
            // epilogue, and that K tile is already on its way meanwhile.
            if (i == 0) {
              const int qb = k % QB;
              mbar_wait(empty_q(qb), ((k / QB) & 1) ^ 1);
              mbar_arrive_expect_tx(full_q(qb), Tr::kQBytes);
              for (int sl = 0; sl < Tr::kSlabs; ++sl)
                tma_load_4d(sbase + Tr::kQ + qb * Tr::kQBytes + sl * kSlabQ, &tm_q, full_q(qb), 64 * sl, w.h, w.q0,
                            w.b);
            }
            mbar_wait(empty_v(s), parity);
            mbar_arrive_expect_tx(full_v(s), Tr::kTileBytes);
            for (int sl = 0; sl < Tr::kSlabs; ++sl)
              tma_load_4d(sbase + Tr::kV + s * Tr::kTileBytes + sl * kSlabKV, &tm_v, full_v(s), 64 * sl, kvh, j0,
                          w.b);
          } else {
            mbar_arrive(full_k(s));
          }
        }
        // Per tile the CTA has one item: a loop that visibly runs once keeps the producer within 24 registers (as a
        // loop it spills in the gated builds).
        if (!Tr::kPersistent) break;
      }
    }
  } else {
    // ---- consumers ----
    setmaxnreg_inc<Tr::kConsumerRegs>();
    const int cw = wg - 1, g = lane >> 2, tq = lane & 3;
    const int rw = 64 * cw + 16 * (warp & 3);  // this warp's first row in the item's query tile
    // Ping-pong: the warpgroups alternate issuing, tile after tile and item after item; warpgroup 0 goes first.
    if (cw == 1) named_bar_arrive(kSchedBar, 256);

    // K: K-major (keys are the n rows). V: N-major (keys are the k rows). Q (per item): this warpgroup's 64 rows.
    const uint64_t k_desc = smem_desc_sw128(sbase + Tr::kK, 16, 1024);
    const uint64_t v_desc = smem_desc_sw128(sbase + Tr::kV, kSlabKV, 1024);

    int it = 0;  // key tiles consumed so far (the producer's count)
    for (int item = blockIdx.x, k = 0; item < n_items; item += gridDim.x, ++k) {
      const Span w = span(item);
      const int q0 = w.q0, kt_hi = w.kt_hi, n_tiles = w.n_tiles, qb = k % QB;
      const int ia = q0 + rw + g;  // this thread's query rows: ia, ia + 8
      const bool last_item = item + int(gridDim.x) >= n_items;
      const uint64_t q_desc = smem_desc_sw128(sbase + Tr::kQ + qb * Tr::kQBytes + cw * 64 * 128, 16, 1024);

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
      // Tile i's scores (bias slot kb_slot) -> P (fp32, in sacc); updates m, l and the correction for O.
      auto softmax = [&](int i, int kb_slot) {
        const int j0 = (kt_hi - i) * BN;
        const bool masked = tile_needs_mask(q0 + rw, 16, j0, BN, T, W);
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int n = 0; n < BN / 8; ++n) {
          float2 kb = make_float2(0.f, 0.f);
          if (kGated) kb = *reinterpret_cast<const float2*>(sKb + kb_slot * BN + 8 * n + 2 * tq);
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
      // After issuing, the other warpgroup's turn; warpgroup 1 skips its very last hand-over (warpgroup 0 has no turn
      // left to take it), so each named barrier sees as many arrivals as syncs.
      auto hand_over = [&](int i) {
        if (!(cw == 1 && last_item && i == n_tiles - 1)) named_bar_arrive(kSchedBar + 1 - cw, 256);
      };

      mbar_wait(full_q(qb), (k / QB) & 1);
      // Tile 0: Q K^T and softmax only.
      mbar_wait(full_k(it % S), (it / S) & 1);
      named_bar_sync(kSchedBar + cw, 256);
      issue_qk(it % S);
      hand_over(0);
      wgmma_wait<0>();
      fence_regs(sacc);
      if (Tr::kEarlyK) release(empty_k(it % S));
      softmax(0, it % KB);
      if (!Tr::kEarlyK) release(empty_k(it % S));
      pack_p();
      for (int i = 1; i < n_tiles; ++i) {
        const int s = (it + i) % S, sp = (it + i - 1) % S;
        mbar_wait(full_k(s), ((it + i) / S) & 1);
        named_bar_sync(kSchedBar + cw, 256);
        issue_qk(s);
        rescale_o();
        mbar_wait(full_v(sp), ((it + i - 1) / S) & 1);
        issue_pv(sp);
        hand_over(i);
        wgmma_wait<1>();  // S_i done, P_{i-1} V_{i-1} may still run
        fence_regs(sacc);
        if (Tr::kEarlyK) release(empty_k(s));
        softmax(i, (it + i) % KB);
        if (!Tr::kEarlyK) release(empty_k(s));
        wgmma_wait<0>();
        fence_regs(oacc);
        fence_regs(pb);
        release(empty_v(sp));
        pack_p();
      }
      rescale_o();
      const int sl = (it + n_tiles - 1) % S;
      mbar_wait(full_v(sl), ((it + n_tiles - 1) / S) & 1);
      issue_pv(sl);
      wgmma_wait<0>();
      fence_regs(oacc);
      release(empty_v(sl));
      it += n_tiles;

      // Epilogue: lse per row; O normalised, staged as bf16 in this warpgroup's rows of the item's Q buffer (same
      // swizzle; its Q K^T are done), then written out 16 bytes per thread; the buffer is then free for a next Q.
      float* lse = p.lse + (int64_t(w.b) * H + w.h) * T;
      const float ref = kGated ? lam_row(w)[int64_t(q0) * H] : 0.f;
      float inv[2];
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        l[hr] = quad_sum(l[hr]);
        inv[hr] = l[hr] > 0.f ? 1.f / l[hr] : 0.f;
        const int i = ia + 8 * hr;
        if (tq == 0 && i < T) {
          const float mm = m[hr] == -INFINITY ? 0.f : m[hr];
          const float lam_i = kGated ? lam_row(w)[int64_t(i) * H] - ref : 0.f;  // the row constant left out
          lse[i] = (mm + log2f(l[hr])) * kLn2 + lam_i;
        }
      }
      unsigned char* sO = smem + Tr::kQ + qb * Tr::kQBytes;
#pragma unroll
      for (int n = 0; n < D / 8; ++n)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int row = rw + g + 8 * hr;  // row & 7 == g
          *reinterpret_cast<uint32_t*>(sO + (n / 8) * kSlabQ + row * 128 + (((n % 8) ^ g) << 4) + 4 * tq) =
              pack_bf16(oacc[4 * n + 2 * hr] * inv[hr], oacc[4 * n + 2 * hr + 1] * inv[hr]);
        }
      named_bar_sync(kEpilogueBar + cw, 128);
      __nv_bfloat16* gO = p.o + int64_t(w.b) * T * p.o_row_stride + w.h * D;
      constexpr int kChunks = D / 8;
      for (int idx = threadIdx.x & 127; idx < 64 * kChunks; idx += 128) {
        const int row = 64 * cw + idx / kChunks, cc = idx % kChunks, t = q0 + row;
        if (t < T)
          *reinterpret_cast<uint4*>(gO + int64_t(t) * p.o_row_stride + cc * 8) =
              *reinterpret_cast<const uint4*>(sO + (cc / 8) * kSlabQ + row * 128 + (((cc % 8) ^ (row & 7)) << 4));
      }
      // The staging writes and reads (generic proxy) before the next TMA write into the buffer (async proxy).
      fence_async_smem();
      release(empty_q(qb));
    }
  }
}

template <int D, Sm90FwdSchedule kSchedule>
void launch_attn_fwd_sm90_schedule(const AttnParams& p, const AttnConsts& c, cudaStream_t stream) {
  using Tr = Sm90FwdSchedTraits<D, kSchedule>;
  const CUtensorMap q = attn_tensor_map(p.q, p.q_row_stride, p.B, p.T, p.H, D, Tr::BM);
  const CUtensorMap k = attn_tensor_map(p.k, p.k_row_stride, p.B, p.T, p.Hkv, D, Tr::BN);
  const CUtensorMap v = attn_tensor_map(p.v, p.v_row_stride, p.B, p.T, p.Hkv, D, Tr::BN);
  auto kernel = c.gated ? attn_fwd_sm90_kernel<D, kSchedule, true> : attn_fwd_sm90_kernel<D, kSchedule, false>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kBytes));
  const int n_hb = p.B * p.H, n_items = (p.T + Tr::BM - 1) / Tr::BM * n_hb;
  int grid = n_items, G = 1;
  if (Tr::kPersistent) {
    const DeviceFacts f = current_device_facts();
    const int sms = f.sms, l2 = f.l2_bytes;
    grid = std::min(n_items, sms);
    // A group's whole K/V in a quarter of the L2 (the rest: Q, O, the previous group's last items): at T 32k and D 128
    // one pair per group (v5's order), at T 8k about three, at T 2k and D 64 about 25 (a 50 MB L2).
    const int64_t kv_bytes = int64_t(p.T) * D * 2 * 2;
    G = int(std::max<int64_t>(1, std::min<int64_t>(n_hb, (l2 / 4) / kv_bytes)));
  }
  kernel<<<grid, Tr::kThreads, Tr::kBytes, stream>>>(q, k, v, p, c, G);
  CUDA_CHECK_LAUNCH();
}

template <int D>
void launch_attn_fwd_sm90(const AttnParams& p, const AttnConsts& c, cudaStream_t stream) {
  if (sm90_fwd_schedule(p) == Sm90FwdSchedule::persistent)
    launch_attn_fwd_sm90_schedule<D, Sm90FwdSchedule::persistent>(p, c, stream);
  else
    launch_attn_fwd_sm90_schedule<D, Sm90FwdSchedule::per_tile>(p, c, stream);
}

}  // namespace gfwa::cuda::detail
