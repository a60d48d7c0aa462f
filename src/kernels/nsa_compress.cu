// NSA compressed branch (docs/nsa.md): block means of K and V, and attention of every query over the means of
// the blocks that end at or before it. Rows of one (sequence, K/V head) are its (token, group head) pairs in
// token-major order, so a CTA's 64 rows share one pass over the compressed keys (G heads per token: the
// K/V tiles are read once per tile of rows, not once per head).
//   forward: CTA per 64 rows, 4 warps x 16 rows, compressed key tiles of 64 double-buffered, online softmax;
//   dQ:      the same tiling, dQ += dS K, written as fp32 (the selected branch adds to it);
//   dK/dV:   CTA per (64 compressed keys, chunk of cmp_rows rows): warp w owns keys 16w..16w+15 and works on
//            the transposed problem (rows = keys) as attention_bwd_kernel.cuh does; each chunk writes its
//            partial sums, and a last kernel adds the chunks in order (no atomics).
// Visibility: compressed key c is visible to token t iff c < (t + 1) / 64; rows that see none get o = 0,
// lse = 0 (the CPU twin's rule).
#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/nsa_common.cuh"

namespace gfwa::cuda::detail {
namespace {

constexpr int kRows = 64, kKeys = 64, kThreads = 128;

__global__ void nsa_pool_kernel(const NsaDims n, const RowsIn x, bf16* out) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= int64_t(n.B) * n.Tc * n.Hkv * n.D) return;
  const int d = int(e % n.D);
  int64_t rest = e / n.D;
  const int hk = int(rest % n.Hkv);
  rest /= n.Hkv;
  const int c = int(rest % n.Tc), b = int(rest / n.Tc);
  const bf16* src = x.p + (int64_t(b) * n.T + int64_t(c) * kNsaBlock) * x.stride + hk * n.D + d;
  float acc = 0.f;
  for (int j = 0; j < kNsaBlock; ++j) acc += to_f(src[j * x.stride]);
  out[e] = to_bf(acc * (1.f / kNsaBlock));
}

// The row space of (b, hk): row r is token r / G, query head hk*G + r % G.
struct GroupRows {
  int64_t rows;  // T*G
  int G, H, T, b, hk;
  __device__ int token(int64_t r) const { return int(r / G); }
  // Element offset of row r in a [B,T,H,*] tensor with row stride `stride` and `width` values per head.
  __device__ int64_t at(int64_t r, int64_t stride, int width) const {
    return (int64_t(b) * T + r / G) * stride + int64_t(hk * G + r % G) * width;
  }
  __device__ int64_t scalar(int64_t r) const { return (int64_t(b) * T + r / G) * H + hk * G + r % G; }
};

__device__ __forceinline__ int visible_cmp(int t) { return (t + 1) / kNsaBlock; }

template <int D>
struct FwdSmem {
  static constexpr int kQ = 0, kK = kQ + kRows * D * 2, kV = kK + 2 * kKeys * D * 2, kBytes = kV + 2 * kKeys * D * 2;
};

template <int D>
__global__ void __launch_bounds__(kThreads) nsa_cmp_fwd_kernel(const NsaDims n, const CmpFwdArgs a) {
  using S = FwdSmem<D>;
  constexpr int kKSteps = D / 16, kNB = kKeys / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const GroupRows gr{int64_t(n.T) * n.G, n.G, n.H, n.T, int(blockIdx.z), int(blockIdx.y)};
  const int64_t r0 = int64_t(gridDim.x - 1 - blockIdx.x) * kRows;  // longest rows first
  const int n_kt = (visible_cmp(gr.token(min(gr.rows, r0 + kRows) - 1)) + kKeys - 1) / kKeys;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, wr = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const int64_t kv_stride = int64_t(n.Hkv) * D;
  const bf16* gK = a.k_cmp + int64_t(gr.b) * n.Tc * kv_stride + gr.hk * D;
  const bf16* gV = a.v_cmp + int64_t(gr.b) * n.Tc * kv_stride + gr.hk * D;
  auto load_kv = [&](int kt, int stage) {
    load_tile_async<kKeys, D, kThreads>(sbase + S::kK + stage * kKeys * D * 2, gK, kv_stride, kt * kKeys, n.Tc);
    load_tile_async<kKeys, D, kThreads>(sbase + S::kV + stage * kKeys * D * 2, gV, kv_stride, kt * kKeys, n.Tc);
  };
  load_rows_async<kRows, D, kThreads>(
      sbase + S::kQ,
      [&](int r) { return r0 + r < gr.rows ? a.q.p + gr.at(r0 + r, a.q.stride, D) : nullptr; }, a.q.p);
  if (n_kt > 0) load_kv(0, 0);
  cp_async_commit();

  // This thread's two rows (g, g+8 of the warp's 16): how many compressed keys each sees.
  int nc[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int64_t r = r0 + wr + g + 8 * hr;
    nc[hr] = r < gr.rows ? visible_cmp(gr.token(r)) : 0;
  }
  const int warp_nc = __reduce_max_sync(0xffffffffu, unsigned(max(nc[0], nc[1])));  // keys any row of the warp sees
  float o[kDB][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int d = 0; d < kDB; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;

  for (int kt = 0, stage = 0; kt < n_kt; ++kt, stage ^= 1) {
    if (kt + 1 < n_kt) {
      load_kv(kt + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int c0 = kt * kKeys;
    if (warp_nc > c0) {
      const uint32_t sK = sbase + S::kK + stage * kKeys * D * 2, sV = sbase + S::kV + stage * kKeys * D * 2;
      float s[kNB][4];
#pragma unroll
      for (int nb = 0; nb < kNB; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        uint32_t qa[4];
        ldsm_x4(qa, a_addr<D>(sbase + S::kQ, wr, kk, aoff));
#pragma unroll
        for (int n2 = 0; n2 < kNB / 2; ++n2) {
          uint32_t bf[4];
          ldsm_x4(bf, bn_addr<D>(sK, n2 * 16, kk, bnoff));
          mma_bf16(s[2 * n2], qa, bf[0], bf[1]);
          mma_bf16(s[2 * n2 + 1], qa, bf[2], bf[3]);
        }
      }
      float mx[2] = {m[0], m[1]};
#pragma unroll
      for (int nb = 0; nb < kNB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hr = e >> 1, c = c0 + nb * 8 + 2 * tq + (e & 1);
          const float v = c < nc[hr] ? s[nb][e] * n.scale_log2 : -INFINITY;
          s[nb][e] = v;
          mx[hr] = fmaxf(mx[hr], v);
        }
      float base[2];
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float x = mx[hr];
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
        base[hr] = x == -INFINITY ? 0.f : x;  // nothing visible yet: keep the row all-zero
        const float corr = exp2_approx(m[hr] - base[hr]);
        m[hr] = x;
        l[hr] *= corr;
#pragma unroll
        for (int d = 0; d < kDB; ++d) {
          o[d][2 * hr] *= corr;
          o[d][2 * hr + 1] *= corr;
        }
      }
      uint32_t pk[kNB][2];
#pragma unroll
      for (int nb = 0; nb < kNB; ++nb) {
        float pv[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          pv[e] = exp2_approx(s[nb][e] - base[e >> 1]);
          l[e >> 1] += pv[e];
        }
        pk[nb][0] = pack_bf16(pv[0], pv[1]);
        pk[nb][1] = pack_bf16(pv[2], pv[3]);
      }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t pa[4] = {pk[2 * kk][0], pk[2 * kk][1], pk[2 * kk + 1][0], pk[2 * kk + 1][1]};
#pragma unroll
        for (int d2 = 0; d2 < kDB / 2; ++d2) {
          uint32_t bf[4];
          ldsm_x4_trans(bf, bk_addr<D>(sV, kk, d2, bkoff));
          mma_bf16(o[2 * d2], pa, bf[0], bf[1]);
          mma_bf16(o[2 * d2 + 1], pa, bf[2], bf[3]);
        }
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();
  __syncthreads();  // with no key tile, the Q copies may still be landing in the rows staged below

  // O goes out through this warp's own rows of the Q tile.
  bf16* sO = reinterpret_cast<bf16*>(smem + S::kQ);
  float inv[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 1);
    l[hr] += __shfl_xor_sync(0xffffffffu, l[hr], 2);
    inv[hr] = l[hr] > 0.f ? 1.f / l[hr] : 0.f;
    const int64_t r = r0 + wr + g + 8 * hr;
    if (tq == 0 && r < gr.rows) a.lse_cmp[gr.scalar(r)] = l[hr] > 0.f ? (m[hr] + log2f(l[hr])) * kLn2 : 0.f;
  }
#pragma unroll
  for (int d = 0; d < kDB; ++d) {
    const float oc[4] = {o[d][0] * inv[0], o[d][1] * inv[0], o[d][2] * inv[1], o[d][3] * inv[1]};
    stage_c<D>(sO, wr, d * 8 + 2 * tq, oc, 1.f, lane);
  }
  __syncwarp();
  store_rows16_to<D>(sO, wr, lane, [&](int r) {
    return r0 + r < gr.rows ? a.o_cmp + gr.at(r0 + r, int64_t(n.H) * D, D) : nullptr;
  });
}

template <int D>
struct DqSmem {
  static constexpr int kQ = 0, kdO = kQ + kRows * D * 2, kK = kdO + kRows * D * 2, kV = kK + 2 * kKeys * D * 2,
                       kBytes = kV + 2 * kKeys * D * 2;
};

template <int D>
__global__ void __launch_bounds__(kThreads) nsa_cmp_dq_kernel(const NsaDims n, const CmpBwdArgs a) {
  using S = DqSmem<D>;
  constexpr int kKSteps = D / 16, kNB = kKeys / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const GroupRows gr{int64_t(n.T) * n.G, n.G, n.H, n.T, int(blockIdx.z), int(blockIdx.y)};
  const int64_t r0 = int64_t(gridDim.x - 1 - blockIdx.x) * kRows;
  const int n_kt = (visible_cmp(gr.token(min(gr.rows, r0 + kRows) - 1)) + kKeys - 1) / kKeys;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, wr = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const int64_t kv_stride = int64_t(n.Hkv) * D, packed = int64_t(n.H) * D;
  const bf16* gK = a.k_cmp + int64_t(gr.b) * n.Tc * kv_stride + gr.hk * D;
  const bf16* gV = a.v_cmp + int64_t(gr.b) * n.Tc * kv_stride + gr.hk * D;
  auto load_kv = [&](int kt, int stage) {
    load_tile_async<kKeys, D, kThreads>(sbase + S::kK + stage * kKeys * D * 2, gK, kv_stride, kt * kKeys, n.Tc);
    load_tile_async<kKeys, D, kThreads>(sbase + S::kV + stage * kKeys * D * 2, gV, kv_stride, kt * kKeys, n.Tc);
  };
  load_rows_async<kRows, D, kThreads>(
      sbase + S::kQ,
      [&](int r) { return r0 + r < gr.rows ? a.q.p + gr.at(r0 + r, a.q.stride, D) : nullptr; }, a.q.p);
  load_rows_async<kRows, D, kThreads>(
      sbase + S::kdO, [&](int r) { return r0 + r < gr.rows ? a.dout + gr.at(r0 + r, packed, D) : nullptr; }, a.dout);
  if (n_kt > 0) load_kv(0, 0);
  cp_async_commit();

  int nc[2];
  float rc[2], dlt[2];  // -lse*log2e and delta of this thread's rows
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int64_t r = r0 + wr + g + 8 * hr;
    const bool ok = r < gr.rows;
    nc[hr] = ok ? visible_cmp(gr.token(r)) : 0;
    rc[hr] = ok ? -a.lse[gr.scalar(r)] * kLog2e : 0.f;
    dlt[hr] = ok ? a.delta[gr.scalar(r)] : 0.f;
  }
  const int warp_nc = __reduce_max_sync(0xffffffffu, unsigned(max(nc[0], nc[1])));  // keys any row of the warp sees
  float dq[kDB][4];
#pragma unroll
  for (int d = 0; d < kDB; ++d) dq[d][0] = dq[d][1] = dq[d][2] = dq[d][3] = 0.f;

  for (int kt = 0, stage = 0; kt < n_kt; ++kt, stage ^= 1) {
    if (kt + 1 < n_kt) {
      load_kv(kt + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int c0 = kt * kKeys;
    if (warp_nc > c0) {
      const uint32_t sK = sbase + S::kK + stage * kKeys * D * 2, sV = sbase + S::kV + stage * kKeys * D * 2;
      float s[kNB][4], dp[kNB][4];
#pragma unroll
      for (int nb = 0; nb < kNB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nb][e] = dp[nb][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        uint32_t aq[4], ao[4];
        ldsm_x4(aq, a_addr<D>(sbase + S::kQ, wr, kk, aoff));
        ldsm_x4(ao, a_addr<D>(sbase + S::kdO, wr, kk, aoff));
#pragma unroll
        for (int n2 = 0; n2 < kNB / 2; ++n2) {
          uint32_t bk[4], bv[4];
          ldsm_x4(bk, bn_addr<D>(sK, n2 * 16, kk, bnoff));
          ldsm_x4(bv, bn_addr<D>(sV, n2 * 16, kk, bnoff));
          mma_bf16(s[2 * n2], aq, bk[0], bk[1]);
          mma_bf16(s[2 * n2 + 1], aq, bk[2], bk[3]);
          mma_bf16(dp[2 * n2], ao, bv[0], bv[1]);
          mma_bf16(dp[2 * n2 + 1], ao, bv[2], bv[3]);
        }
      }
#pragma unroll
      for (int nb = 0; nb < kNB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hr = e >> 1, c = c0 + nb * 8 + 2 * tq + (e & 1);
          const float pv = c < nc[hr] ? exp2_approx(fmaf(s[nb][e], n.scale_log2, rc[hr])) : 0.f;
          s[nb][e] = pv * (dp[nb][e] - dlt[hr]);
        }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t sa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int d2 = 0; d2 < kDB / 2; ++d2) {
          uint32_t bk[4];
          ldsm_x4_trans(bk, bk_addr<D>(sK, kk, d2, bkoff));
          mma_bf16(dq[2 * d2], sa, bk[0], bk[1]);
          mma_bf16(dq[2 * d2 + 1], sa, bk[2], bk[3]);
        }
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int64_t r = r0 + wr + g + 8 * hr;
    if (r >= gr.rows) continue;
    float* dst = a.dq + gr.at(r, packed, D);
#pragma unroll
    for (int d = 0; d < kDB; ++d)
      *reinterpret_cast<float2*>(dst + d * 8 + 2 * tq) =
          make_float2(dq[d][2 * hr] * n.scale, dq[d][2 * hr + 1] * n.scale);
  }
}

template <int D>
struct DkvSmem {
  static constexpr int kK = 0, kV = kK + kKeys * D * 2, kQ = kV + kKeys * D * 2, kdO = kQ + 2 * kRows * D * 2,
                       kLse = kdO + 2 * kRows * D * 2,  // 2 stages of kRows floats each: -lse*log2e,
      kDelta = kLse + 2 * kRows * 4,                    // delta,
      kNc = kDelta + 2 * kRows * 4,                     // visible compressed keys (int)
      kBytes = kNc + 2 * kRows * 4;
};

// CTA (64 compressed keys c0.., chunk of rows, b*Hkv + hk); rows of the chunk that see none of the keys are
// skipped, and the chunk's partial sums are written even when empty (the reduction reads every chunk).
template <int D>
__global__ void __launch_bounds__(kThreads) nsa_cmp_dkv_kernel(const NsaDims n, const CmpBwdArgs a) {
  using S = DkvSmem<D>;
  constexpr int kKSteps = D / 16, kNQ = kRows / 8, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const int b = int(blockIdx.z) / n.Hkv, hk = int(blockIdx.z) % n.Hkv, chunk = blockIdx.y;
  const GroupRows gr{int64_t(n.T) * n.G, n.G, n.H, n.T, b, hk};
  const int c0 = blockIdx.x * kKeys;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, wr = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  // Row tiles [rt_lo, rt_hi]: the chunk's rows from the first that sees key c0 (token (c0 + 1)*64 - 1).
  const int64_t chunk_lo = int64_t(chunk) * a.chunk_rows, chunk_hi = min(gr.rows, chunk_lo + a.chunk_rows);
  const int64_t first = max(chunk_lo, (int64_t(c0 + 1) * kNsaBlock - 1) * n.G);
  const int64_t rt_lo = first / kRows, rt_hi = first < chunk_hi ? (chunk_hi - 1) / kRows : rt_lo - 1;

  const int64_t kv_stride = int64_t(n.Hkv) * D, packed = int64_t(n.H) * D;
  auto load_rows = [&](int64_t rt, int stage) {
    const int64_t i0 = rt * kRows;
    load_rows_async<kRows, D, kThreads>(
        sbase + S::kQ + stage * kRows * D * 2,
        [&](int r) { return i0 + r < chunk_hi ? a.q.p + gr.at(i0 + r, a.q.stride, D) : nullptr; }, a.q.p);
    load_rows_async<kRows, D, kThreads>(
        sbase + S::kdO + stage * kRows * D * 2,
        [&](int r) { return i0 + r < chunk_hi ? a.dout + gr.at(i0 + r, packed, D) : nullptr; }, a.dout);
    float* lse = reinterpret_cast<float*>(smem + S::kLse) + stage * kRows;
    float* dlt = reinterpret_cast<float*>(smem + S::kDelta) + stage * kRows;
    int* nc = reinterpret_cast<int*>(smem + S::kNc) + stage * kRows;
    for (int r = threadIdx.x; r < kRows; r += kThreads) {
      const int64_t i = i0 + r;
      const bool ok = i < chunk_hi;
      lse[r] = ok ? -a.lse[gr.scalar(i)] * kLog2e : 0.f;
      dlt[r] = ok ? a.delta[gr.scalar(i)] : 0.f;
      nc[r] = ok ? visible_cmp(gr.token(i)) : 0;
    }
  };
  const bf16* gK = a.k_cmp + int64_t(b) * n.Tc * kv_stride + hk * D;
  const bf16* gV = a.v_cmp + int64_t(b) * n.Tc * kv_stride + hk * D;
  load_tile_async<kKeys, D, kThreads>(sbase + S::kK, gK, kv_stride, c0, n.Tc);
  load_tile_async<kKeys, D, kThreads>(sbase + S::kV, gV, kv_stride, c0, n.Tc);
  if (rt_lo <= rt_hi) load_rows(rt_lo, 0);
  cp_async_commit();

  float dk[kDB][4], dv[kDB][4];
#pragma unroll
  for (int d = 0; d < kDB; ++d)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[d][e] = dv[d][e] = 0.f;

  int stage = 0;
  for (int64_t rt = rt_lo; rt <= rt_hi; ++rt, stage ^= 1) {
    if (rt < rt_hi) {
      load_rows(rt + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int* nc = reinterpret_cast<const int*>(smem + S::kNc) + stage * kRows;
    // The tile's last row sees the most keys: skip the arithmetic when it sees none of this warp's.
    const int last = int(min(chunk_hi - rt * kRows, int64_t(kRows))) - 1;
    if (nc[last] > c0 + wr) {
      const uint32_t sQ = sbase + S::kQ + stage * kRows * D * 2, sdO = sbase + S::kdO + stage * kRows * D * 2;
      const float* lse = reinterpret_cast<const float*>(smem + S::kLse) + stage * kRows;
      const float* dlt = reinterpret_cast<const float*>(smem + S::kDelta) + stage * kRows;
      float st[kNQ][4], dpt[kNQ][4];
#pragma unroll
      for (int nq = 0; nq < kNQ; ++nq)
#pragma unroll
        for (int e = 0; e < 4; ++e) st[nq][e] = dpt[nq][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kKSteps; ++kk) {
        uint32_t ak[4], av[4];
        ldsm_x4(ak, a_addr<D>(sbase + S::kK, wr, kk, aoff));
        ldsm_x4(av, a_addr<D>(sbase + S::kV, wr, kk, aoff));
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
#pragma unroll
      for (int nq = 0; nq < kNQ; ++nq)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nq * 8 + 2 * tq + (e & 1), c = c0 + wr + g + 8 * (e >> 1);
          const float pv = c < nc[col] ? exp2_approx(fmaf(st[nq][e], n.scale_log2, lse[col])) : 0.f;
          dpt[nq][e] = pv * (dpt[nq][e] - dlt[col]);
          st[nq][e] = pv;
        }
#pragma unroll
      for (int kk = 0; kk < kRows / 16; ++kk) {
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
    __syncthreads();
  }
  cp_async_wait<0>();

  const int64_t part_row0 = ((int64_t(chunk) * n.B + b) * n.Hkv + hk) * n.Tc;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int c = c0 + wr + g + 8 * hr;
    if (c >= n.Tc) continue;
    float* pk = a.part_k + (part_row0 + c) * D;
    float* pv = a.part_v + (part_row0 + c) * D;
#pragma unroll
    for (int d = 0; d < kDB; ++d) {
      *reinterpret_cast<float2*>(pk + d * 8 + 2 * tq) = make_float2(dk[d][2 * hr] * n.scale, dk[d][2 * hr + 1] * n.scale);
      *reinterpret_cast<float2*>(pv + d * 8 + 2 * tq) = make_float2(dv[d][2 * hr], dv[d][2 * hr + 1]);
    }
  }
}

// dk_cmp[b, c, hk, d] = sum over the chunks, in order.
__global__ void nsa_cmp_reduce_kernel(const NsaDims n, const CmpBwdArgs a) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= int64_t(n.B) * n.Tc * n.Hkv * n.D) return;
  const int d = int(e % n.D);
  int64_t rest = e / n.D;
  const int hk = int(rest % n.Hkv);
  rest /= n.Hkv;
  const int c = int(rest % n.Tc), b = int(rest / n.Tc);
  float sk = 0.f, sv = 0.f;
  for (int ch = 0; ch < a.n_chunks; ++ch) {
    const int64_t i = (((int64_t(ch) * n.B + b) * n.Hkv + hk) * n.Tc + c) * n.D + d;
    sk += a.part_k[i];
    sv += a.part_v[i];
  }
  a.dk_cmp[e] = sk;
  a.dv_cmp[e] = sv;
}

template <class Kernel>
void set_smem(Kernel k, int bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

template <int D>
void cmp_fwd(const NsaDims& n, const CmpFwdArgs& a, cudaStream_t st) {
  set_smem(nsa_cmp_fwd_kernel<D>, FwdSmem<D>::kBytes);
  const dim3 grid(unsigned(ceil_div(int64_t(n.T) * n.G, kRows)), n.Hkv, n.B);
  nsa_cmp_fwd_kernel<D><<<grid, kThreads, FwdSmem<D>::kBytes, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
}

template <int D>
void cmp_bwd(const NsaDims& n, const CmpBwdArgs& a, cudaStream_t st) {
  set_smem(nsa_cmp_dq_kernel<D>, DqSmem<D>::kBytes);
  const dim3 gq(unsigned(ceil_div(int64_t(n.T) * n.G, kRows)), n.Hkv, n.B);
  nsa_cmp_dq_kernel<D><<<gq, kThreads, DqSmem<D>::kBytes, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
  if (n.Tc == 0) return;
  set_smem(nsa_cmp_dkv_kernel<D>, DkvSmem<D>::kBytes);
  const dim3 gkv(unsigned(ceil_div(n.Tc, kKeys)), unsigned(a.n_chunks), unsigned(n.B * n.Hkv));
  nsa_cmp_dkv_kernel<D><<<gkv, kThreads, DkvSmem<D>::kBytes, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
  const int64_t total = int64_t(n.B) * n.Tc * n.Hkv * n.D;
  nsa_cmp_reduce_kernel<<<unsigned(ceil_div(total, 256)), 256, 0, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_nsa_pool(const NsaDims& n, RowsIn x, bf16* x_cmp, cudaStream_t st) {
  const int64_t total = int64_t(n.B) * n.Tc * n.Hkv * n.D;
  if (total == 0) return;
  nsa_pool_kernel<<<unsigned(ceil_div(total, 256)), 256, 0, st>>>(n, x, x_cmp);
  CUDA_CHECK_LAUNCH();
}

void launch_nsa_cmp_fwd(const NsaDims& n, const CmpFwdArgs& a, cudaStream_t st) {
  if (n.D == 64)
    cmp_fwd<64>(n, a, st);
  else
    cmp_fwd<128>(n, a, st);
}

void launch_nsa_cmp_bwd(const NsaDims& n, const CmpBwdArgs& a, cudaStream_t st) {
  if (n.D == 64)
    cmp_bwd<64>(n, a, st);
  else
    cmp_bwd<128>(n, a, st);
}

}  // namespace gfwa::cuda::detail
