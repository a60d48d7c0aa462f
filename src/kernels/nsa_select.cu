// NSA selected branch (docs/nsa.md; the block selection is in nsa_topk.cu).
//   forward:  CTA per (token, K/V group, up to 32 heads): the selected blocks' K/V are loaded once for all
//             heads of the group (NSA's point: one K/V read serves G queries), double-buffered; warp w takes
//             keys 16w..16w+15 of every block with its own online softmax, and the four partial softmaxes
//             are merged at the end (as flash-decoding merges chunks).
//   dQ:       the same tiling; dQ adds to the compressed branch's fp32 dQ.
//   dK/dV:    per (sequence, K/V group), the tokens that selected each block are listed (bitmap, counts,
//             prefix sums, ordered fill: deterministic) and cut into items of about sel_rows query rows;
//             CTA per item, warp w owns keys 16w..16w+15 of the block (the transposed problem), partial sums
//             per item, added in order by nsa_mix.cu. An attention sink picked by every token is thus spread
//             over many CTAs instead of one.
#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/nsa_common.cuh"

namespace gfwa::cuda::detail {
namespace {

constexpr int kThreads = 128, kWarps = 4, kRows = 64;

// ------------------------------------------------------------------------------- selected branch: forward, dQ

// Query heads per CTA: 16 * MT (MT = 1 for groups of up to 16 heads, else 2 and several CTAs per group).
template <int D, int MT>
struct SelSmem {
  static constexpr int R = 16 * MT;
  static constexpr int kQ = 0;                      // R x D
  static constexpr int kdO = kQ + R * D * 2;        // R x D (dQ kernel only)
  static constexpr int kK = kdO + R * D * 2;        // 2 stages of 64 x D
  static constexpr int kV = kK + 2 * kRows * D * 2; // 2 stages of 64 x D
  static constexpr int kEnd = kV + 2 * kRows * D * 2;
  static constexpr int kMerge = kK;                 // after the loop: [4 warps][R][D] fp32 over K and V
  static constexpr int kM = kEnd, kL = kM + kWarps * R * 4, kIdx = kL + kWarps * R * 4;
  static constexpr int kBytes = kIdx + kNsaMaxTopK * 4;
  static_assert(kWarps * R * D * 4 <= kEnd - kK, "merge scratch fits over the K/V stages");
};

// CTA coordinates shared by the forward and dQ kernels.
struct SelCta {
  int t, hk, gh0, b, nv;  // token, K/V head, first head of the CTA within the group, sequence, valid blocks
  int64_t bT;
  // Query row r of the CTA (head gh0 + r of the group), or nullptr past the group.
  __device__ const bf16* q_row(const RowsIn& q, int r, int G) const {
    return gh0 + r < G ? q.p + (bT + t) * q.stride + int64_t(hk * G + gh0 + r) * q_dim : nullptr;
  }
  int q_dim;
};

template <int R>
__device__ __forceinline__ SelCta sel_cta(const NsaDims& n, const int32_t* idx, int* sIdx) {
  SelCta c;
  c.q_dim = n.D;
  const int n_hc = (n.G + R - 1) / R;
  c.t = blockIdx.x;
  c.hk = blockIdx.y / n_hc;
  c.gh0 = (blockIdx.y % n_hc) * R;
  c.b = blockIdx.z;
  c.bT = int64_t(c.b) * n.T;
  const int32_t* row = idx + ((c.bT + c.t) * n.Hkv + c.hk) * n.S;
  for (int i = threadIdx.x; i < n.S; i += blockDim.x) sIdx[i] = row[i];
  __syncthreads();
  c.nv = 0;
  while (c.nv < n.S && sIdx[c.nv] >= 0) ++c.nv;
  return c;
}

// Block `blk` of K and V (keys blk*64 ..; rows past T zero-filled) into one stage.
template <int D>
__device__ __forceinline__ void load_block(uint32_t sK, uint32_t sV, const RowsIn& k, const RowsIn& v, int64_t bT,
                                           int hk, int blk, int T) {
  load_tile_async<kRows, D, kThreads>(sK, k.p + bT * k.stride + hk * D, k.stride, blk * kNsaBlock, T);
  load_tile_async<kRows, D, kThreads>(sV, v.p + bT * v.stride + hk * D, v.stride, blk * kNsaBlock, T);
}

template <int D, int MT>
__global__ void __launch_bounds__(kThreads) nsa_sel_fwd_kernel(const NsaDims n, const SelFwdArgs a) {
  using S = SelSmem<D, MT>;
  constexpr int R = S::R, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  int* sIdx = reinterpret_cast<int*>(smem + S::kIdx);
  const SelCta c = sel_cta<R>(n, a.idx, sIdx);
  const int G = n.G, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int kw = 16 * warp;  // this warp's keys within every block
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  load_rows_async<R, D, kThreads>(sbase + S::kQ, [&](int r) { return c.q_row(a.q, r, G); }, a.q.p);
  auto load = [&](int i, int stage) {
    load_block<D>(sbase + S::kK + stage * kRows * D * 2, sbase + S::kV + stage * kRows * D * 2, a.k, a.v, c.bT,
                  c.hk, sIdx[i], n.T);
  };
  if (c.nv > 0) load(0, 0);
  cp_async_commit();

  float o[MT][kDB][4], m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
    for (int d = 0; d < kDB; ++d) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;
  }

  pipeline(c.nv, load, [&](int i, int stage) {
    const int j0 = sIdx[i] * kNsaBlock + kw;
    if (j0 > c.t) return;  // none of the warp's keys is visible (only the own block is cut by causality)
    const uint32_t sK = sbase + S::kK + stage * kRows * D * 2, sV = sbase + S::kV + stage * kRows * D * 2;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float s[2][4];
      mma_abt<D, 2>(s, sbase + S::kQ, 16 * mt, sK, kw, aoff, bnoff);
#pragma unroll
      for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          s[nb][e] = j0 + nb * 8 + 2 * tq + (e & 1) <= c.t ? s[nb][e] * n.scale_log2 : -INFINITY;
      softmax_step<D, 2>(s, m[mt], l[mt], o[mt]);
      mma_xb<D, 1>(o[mt], s, sV, warp, bkoff);
    }
  });

  // Merge the four warps' softmaxes: M = max m_w, L = sum l_w 2^(m_w - M), o = sum o_w 2^(m_w - M) / L.
  float* sM = reinterpret_cast<float*>(smem + S::kM);
  float* sL = reinterpret_cast<float*>(smem + S::kL);
  float* sO = reinterpret_cast<float*>(smem + S::kMerge);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      l[mt][hr] = quad_sum(l[mt][hr]);
      if (tq == 0) {
        sM[warp * R + 16 * mt + g + 8 * hr] = m[mt][hr];
        sL[warp * R + 16 * mt + g + 8 * hr] = l[mt][hr];
      }
    }
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = 16 * mt + g + 8 * hr;
      float M = -INFINITY, Ls = 0.f;
      for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sM[w * R + row]);
      for (int w = 0; w < kWarps; ++w)
        if (sM[w * R + row] != -INFINITY) Ls += sL[w * R + row] * exp2_approx(sM[w * R + row] - M);
      const float f = m[mt][hr] != -INFINITY && Ls > 0.f ? exp2_approx(m[mt][hr] - M) / Ls : 0.f;
      float* dst = sO + (warp * R + row) * D;
#pragma unroll
      for (int d = 0; d < kDB; ++d)
        *reinterpret_cast<float2*>(dst + d * 8 + 2 * tq) = make_float2(o[mt][d][2 * hr] * f, o[mt][d][2 * hr + 1] * f);
      if (warp == 0 && tq == 0 && c.gh0 + row < G)
        a.lse_sel[(c.bT + c.t) * n.H + c.hk * G + c.gh0 + row] = Ls > 0.f ? (M + log2f(Ls)) * kLn2 : 0.f;
    }
  __syncthreads();
  for (int i = threadIdx.x; i < R * kDB; i += kThreads) {
    const int row = i / kDB, ch = i % kDB;
    if (c.gh0 + row >= G) continue;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int w = 0; w < kWarps; ++w)
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] += sO[(w * R + row) * D + ch * 8 + e];
    uint4 pk;
    pk.x = pack_bf16(acc[0], acc[1]);
    pk.y = pack_bf16(acc[2], acc[3]);
    pk.z = pack_bf16(acc[4], acc[5]);
    pk.w = pack_bf16(acc[6], acc[7]);
    *reinterpret_cast<uint4*>(a.o_sel + ((c.bT + c.t) * n.H + c.hk * G + c.gh0 + row) * D + ch * 8) = pk;
  }
}

template <int D, int MT>
__global__ void __launch_bounds__(kThreads) nsa_sel_dq_kernel(const NsaDims n, const SelBwdArgs a) {
  using S = SelSmem<D, MT>;
  constexpr int R = S::R, kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  int* sIdx = reinterpret_cast<int*>(smem + S::kIdx);
  const SelCta c = sel_cta<R>(n, a.idx, sIdx);
  const int G = n.G, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const int kw = 16 * warp;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);
  const int64_t head0 = (c.bT + c.t) * n.H + c.hk * G + c.gh0;  // row (token t, first head of the CTA)

  load_rows_async<R, D, kThreads>(sbase + S::kQ, [&](int r) { return c.q_row(a.q, r, G); }, a.q.p);
  load_rows_async<R, D, kThreads>(
      sbase + S::kdO, [&](int r) { return c.gh0 + r < G ? a.dout + (head0 + r) * D : nullptr; }, a.dout);
  auto load = [&](int i, int stage) {
    load_block<D>(sbase + S::kK + stage * kRows * D * 2, sbase + S::kV + stage * kRows * D * 2, a.k, a.v, c.bT,
                  c.hk, sIdx[i], n.T);
  };
  if (c.nv > 0) load(0, 0);
  cp_async_commit();

  float rc[MT][2], dlt[MT][2], dq[MT][kDB][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = 16 * mt + g + 8 * hr;
      const bool ok = c.gh0 + row < G;
      rc[mt][hr] = ok ? -a.lse[head0 + row] * kLog2e : 0.f;
      dlt[mt][hr] = ok ? a.delta[head0 + row] : 0.f;
    }
#pragma unroll
    for (int d = 0; d < kDB; ++d) dq[mt][d][0] = dq[mt][d][1] = dq[mt][d][2] = dq[mt][d][3] = 0.f;
  }

  pipeline(c.nv, load, [&](int i, int stage) {
    const int j0 = sIdx[i] * kNsaBlock + kw;
    if (j0 > c.t) return;
    const uint32_t sK = sbase + S::kK + stage * kRows * D * 2, sV = sbase + S::kV + stage * kRows * D * 2;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float s[2][4], dp[2][4];
      mma_abt<D, 2>(s, sbase + S::kQ, 16 * mt, sK, kw, aoff, bnoff);
      mma_abt<D, 2>(dp, sbase + S::kdO, 16 * mt, sV, kw, aoff, bnoff);
#pragma unroll
      for (int nb = 0; nb < 2; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int hr = e >> 1;
          const float pv = j0 + nb * 8 + 2 * tq + (e & 1) <= c.t
                               ? exp2_approx(fmaf(s[nb][e], n.scale_log2, rc[mt][hr]))
                               : 0.f;
          s[nb][e] = pv * (dp[nb][e] - dlt[mt][hr]);
        }
      mma_xb<D, 1>(dq[mt], s, sK, warp, bkoff);
    }
  });

  // The four warps' partial dQ, added in warp order onto the compressed branch's dQ.
  float* sO = reinterpret_cast<float*>(smem + S::kMerge);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float* dst = sO + (warp * R + 16 * mt + g + 8 * hr) * D;
#pragma unroll
      for (int d = 0; d < kDB; ++d)
        *reinterpret_cast<float2*>(dst + d * 8 + 2 * tq) = make_float2(dq[mt][d][2 * hr], dq[mt][d][2 * hr + 1]);
    }
  __syncthreads();
  for (int i = threadIdx.x; i < R * D; i += kThreads) {
    const int row = i / D, d = i % D;
    if (c.gh0 + row >= G) continue;
    float acc = 0.f;
    for (int w = 0; w < kWarps; ++w) acc += sO[(w * R + row) * D + d];
    a.dq[(head0 + row) * D + d] += acc * n.scale;
  }
}

// --------------------------------------------------------------------------- selected branch: who picked what

__global__ void nsa_sel_mark_kernel(const NsaDims n, const int32_t* idx, const SelIndex ix) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= int64_t(n.B) * n.T * n.Hkv * n.S) return;
  const int c = idx[e];
  if (c < 0) return;
  int64_t rest = e / n.S;
  const int hk = int(rest % n.Hkv);
  rest /= n.Hkv;
  const int t = int(rest % n.T), b = int(rest / n.T);
  const int64_t row = int64_t(b * n.Hkv + hk) * n.Tb + c;
  // Integer atomics: the bits and counts come out the same whatever the order.
  atomicOr(ix.bitmap + row * ix.words + t / 32, 1u << (t & 31));
  atomicAdd(ix.count + row, 1);
}

// One CTA per (b, hk): exclusive prefix sums over the blocks of the token counts and of the item counts.
__global__ void __launch_bounds__(1024) nsa_sel_scan_kernel(const NsaDims n, const SelIndex ix) {
  __shared__ int scratch[32];
  const int64_t bh = blockIdx.x;
  const int* count = ix.count + bh * n.Tb;
  int* tok_off = ix.tok_off + bh * (n.Tb + 1);
  int* item_off = ix.item_off + bh * (n.Tb + 1);
  const int per = (n.Tb + blockDim.x - 1) / blockDim.x, lo = min(n.Tb, int(threadIdx.x) * per),
            hi = min(n.Tb, lo + per);
  int sc = 0, si = 0;
  for (int c = lo; c < hi; ++c) {
    sc += count[c];
    si += (count[c] + ix.item_tokens - 1) / ix.item_tokens;
  }
  int total_c, total_i;
  int oc = block_exclusive_scan(sc, scratch, &total_c);
  int oi = block_exclusive_scan(si, scratch, &total_i);
  for (int c = lo; c < hi; ++c) {
    tok_off[c] = oc;
    item_off[c] = oi;
    oc += count[c];
    oi += (count[c] + ix.item_tokens - 1) / ix.item_tokens;
  }
  if (threadIdx.x == 0) {
    tok_off[n.Tb] = total_c;
    item_off[n.Tb] = total_i;
  }
}

// One CTA per (block c, b*Hkv + hk): the tokens whose bit is set in row c, in increasing order.
__global__ void __launch_bounds__(256) nsa_sel_fill_kernel(const NsaDims n, const SelIndex ix) {
  __shared__ int scratch[32];
  const int c = blockIdx.x;
  const int64_t bh = blockIdx.y;
  const uint32_t* row = ix.bitmap + (bh * n.Tb + c) * ix.words;
  int* out = ix.list + bh * int64_t(n.T) * n.S + ix.tok_off[bh * (n.Tb + 1) + c];
  int running = 0;
  for (int w0 = c * kNsaBlock / 32; w0 < ix.words; w0 += blockDim.x) {  // tokens before the block never pick it
    const int w = w0 + threadIdx.x;
    uint32_t word = w < ix.words ? row[w] : 0u;
    int total;
    int pos = running + block_exclusive_scan(__popc(word), scratch, &total);
    while (word) {
      out[pos++] = w * 32 + __ffs(word) - 1;
      word &= word - 1;
    }
    running += total;
  }
}

// ------------------------------------------------------------------------------ selected branch: dK, dV

// CTA per item (block c, a piece of the tokens that picked it), K/V head hk, sequence b.
template <int D>
__global__ void __launch_bounds__(kThreads) nsa_sel_dkv_kernel(const NsaDims n, const SelBwdArgs a) {
  using S = DkvSmem<D>;
  constexpr int kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const int hk = blockIdx.y, b = blockIdx.z, item = blockIdx.x, G = n.G;
  const int64_t bh = int64_t(b) * n.Hkv + hk, bT = int64_t(b) * n.T;
  const int* item_off = a.ix.item_off + bh * (n.Tb + 1);
  if (item >= item_off[n.Tb]) return;  // the bound on items was not reached (uniform over the CTA)
  int lo = 0, hi = n.Tb - 1;  // the block: the last whose items start at or before this one
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (item_off[mid] <= item) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int c = lo;
  const int* tok_off = a.ix.tok_off + bh * (n.Tb + 1);
  const int tl = tok_off[c] + (item - item_off[c]) * a.ix.item_tokens;
  const int th = min(tok_off[c + 1], tl + a.ix.item_tokens);
  const int* list = a.ix.list + bh * int64_t(n.T) * n.S;
  const int rows = (th - tl) * G, n_rt = (rows + kRows - 1) / kRows;
  const int wr = (threadIdx.x >> 5) * 16;
  const int j0 = c * kNsaBlock + wr;  // this warp's first key

  auto load_rows = [&](int rt, int stage) {
    const int i0 = rt * kRows;
    load_dkv_rows<D, kThreads>(
        smem, stage,
        [&](int r) {
          if (i0 + r >= rows) return DkvRow{false, 0, 0, -1};
          const int t = list[tl + (i0 + r) / G], h = hk * G + (i0 + r) % G;
          return DkvRow{true, (bT + t) * a.q.stride + int64_t(h) * D, (bT + t) * n.H + h, t};
        },
        a.q.p, a.dout, a.lse, a.delta, -1);
  };
  load_block<D>(sbase + S::kK, sbase + S::kV, a.k, a.v, bT, hk, c, n.T);
  if (n_rt > 0) load_rows(0, 0);
  cp_async_commit();

  float dk[kDB][4], dv[kDB][4];
  dkv_rows<D>(
      smem, wr, n_rt, n.scale_log2, load_rows,
      // Tokens ascend along the rows: active when the last valid row's token reaches the warp's keys.
      [&](int rt, const int* tok) { return tok[min(rows - rt * kRows, kRows) - 1] >= j0; },
      [&](const int* tok, int col, int key) { return j0 + key <= tok[col]; }, dk, dv);

  const int64_t part_row0 = (bh * a.ix.max_items + item) * kNsaBlock + wr;
  store_acc_f32<D>(dk, n.scale, [&](int r) { return a.part_k + (part_row0 + r) * D; });
  store_acc_f32<D>(dv, 1.f, [&](int r) { return a.part_v + (part_row0 + r) * D; });
}

// ----------------------------------------------------------------------------------------------- launchers

template <int MT>
int sel_heads_blocks(const NsaDims& n) {
  return (n.G + 16 * MT - 1) / (16 * MT);
}

template <int D, int MT>
void sel_fwd(const NsaDims& n, const SelFwdArgs& a, cudaStream_t st) {
  constexpr int kSmem = SelSmem<D, MT>::kBytes;
  set_smem(nsa_sel_fwd_kernel<D, MT>, kSmem);
  const dim3 grid(n.T, n.Hkv * sel_heads_blocks<MT>(n), n.B);
  nsa_sel_fwd_kernel<D, MT><<<grid, kThreads, kSmem, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
}

template <int D, int MT>
void sel_dq(const NsaDims& n, const SelBwdArgs& a, cudaStream_t st) {
  constexpr int kSmem = SelSmem<D, MT>::kBytes;
  set_smem(nsa_sel_dq_kernel<D, MT>, kSmem);
  const dim3 grid(n.T, n.Hkv * sel_heads_blocks<MT>(n), n.B);
  nsa_sel_dq_kernel<D, MT><<<grid, kThreads, kSmem, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
}

template <int D>
void sel_bwd(const NsaDims& n, const SelBwdArgs& a, cudaStream_t st) {
  if (n.G <= 16)
    sel_dq<D, 1>(n, a, st);
  else
    sel_dq<D, 2>(n, a, st);
  set_smem(nsa_sel_dkv_kernel<D>, DkvSmem<D>::kBytes);
  const dim3 grid(unsigned(a.ix.max_items), n.Hkv, n.B);
  nsa_sel_dkv_kernel<D><<<grid, kThreads, DkvSmem<D>::kBytes, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_nsa_sel_fwd(const NsaDims& n, const SelFwdArgs& a, cudaStream_t st) {
  if (n.D == 64) {
    if (n.G <= 16)
      sel_fwd<64, 1>(n, a, st);
    else
      sel_fwd<64, 2>(n, a, st);
  } else {
    if (n.G <= 16)
      sel_fwd<128, 1>(n, a, st);
    else
      sel_fwd<128, 2>(n, a, st);
  }
}

void launch_nsa_sel_index(const NsaDims& n, const int32_t* idx, const SelIndex& ix, cudaStream_t st) {
  const int64_t rows = int64_t(n.B) * n.Hkv * n.Tb;
  CUDA_CHECK(cudaMemsetAsync(ix.bitmap, 0, size_t(rows) * ix.words * sizeof(uint32_t), st));
  CUDA_CHECK(cudaMemsetAsync(ix.count, 0, size_t(rows) * sizeof(int), st));
  const int64_t entries = int64_t(n.B) * n.T * n.Hkv * n.S;
  nsa_sel_mark_kernel<<<unsigned(ceil_div(entries, 256)), 256, 0, st>>>(n, idx, ix);
  CUDA_CHECK_LAUNCH();
  nsa_sel_scan_kernel<<<unsigned(n.B * n.Hkv), 1024, 0, st>>>(n, ix);
  CUDA_CHECK_LAUNCH();
  nsa_sel_fill_kernel<<<dim3(n.Tb, n.B * n.Hkv), 256, 0, st>>>(n, ix);
  CUDA_CHECK_LAUNCH();
}

void launch_nsa_sel_bwd(const NsaDims& n, const SelBwdArgs& a, cudaStream_t st) {
  if (n.D == 64)
    sel_bwd<64>(n, a, st);
  else
    sel_bwd<128>(n, a, st);
}

}  // namespace gfwa::cuda::detail
