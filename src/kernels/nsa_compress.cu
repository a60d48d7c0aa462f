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

// Compressed K/V tiles of (b, hk): key tile kt into `stage` of the tiles at sK, sV.
struct CmpKv {
  const bf16 *k, *v;
  int64_t stride;
  int Tc;
  __device__ CmpKv(const NsaDims& n, const bf16* k_cmp, const bf16* v_cmp, int b, int hk)
      : k(k_cmp + (int64_t(b) * n.Tc * n.Hkv + hk) * n.D),
        v(v_cmp + (int64_t(b) * n.Tc * n.Hkv + hk) * n.D),
        stride(int64_t(n.Hkv) * n.D),
        Tc(n.Tc) {}
  template <int D>
  __device__ void load(uint32_t sK, uint32_t sV, int kt, int stage) const {
    load_tile_async<kKeys, D, kThreads>(sK + stage * kKeys * D * 2, k, stride, kt * kKeys, Tc);
    load_tile_async<kKeys, D, kThreads>(sV + stage * kKeys * D * 2, v, stride, kt * kKeys, Tc);
  }
};

template <int D>
__global__ void __launch_bounds__(kThreads) nsa_cmp_fwd_kernel(const NsaDims n, const CmpFwdArgs a) {
  using S = FwdSmem<D>;
  constexpr int kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const GroupRows gr{int64_t(n.T) * n.G, n.G, n.H, n.T, int(blockIdx.z), int(blockIdx.y)};
  const int64_t r0 = int64_t(gridDim.x - 1 - blockIdx.x) * kRows;  // longest rows first
  const int n_kt = (visible_cmp(gr.token(min(gr.rows, r0 + kRows) - 1)) + kKeys - 1) / kKeys;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, wr = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const CmpKv kv(n, a.k_cmp, a.v_cmp, gr.b, gr.hk);
  load_rows_async<kRows, D, kThreads>(
      sbase + S::kQ,
      [&](int r) { return r0 + r < gr.rows ? a.q.p + gr.at(r0 + r, a.q.stride, D) : nullptr; }, a.q.p);
  if (n_kt > 0) kv.load<D>(sbase + S::kK, sbase + S::kV, 0, 0);
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

  pipeline(
      n_kt, [&](int kt, int stage) { kv.load<D>(sbase + S::kK, sbase + S::kV, kt, stage); },
      [&](int kt, int stage) {
        const int c0 = kt * kKeys;
        if (warp_nc <= c0) return;
        float s[kKeys / 8][4];
        mma_abt<D, kKeys / 8>(s, sbase + S::kQ, wr, sbase + S::kK + stage * kKeys * D * 2, 0, aoff, bnoff);
#pragma unroll
        for (int nb = 0; nb < kKeys / 8; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            s[nb][e] = c0 + nb * 8 + 2 * tq + (e & 1) < nc[e >> 1] ? s[nb][e] * n.scale_log2 : -INFINITY;
        softmax_step<D, kKeys / 8>(s, m, l, o);
        mma_xb<D, kKeys / 16>(o, s, sbase + S::kV + stage * kKeys * D * 2, 0, bkoff);
      });

  // O goes out through this warp's own rows of the Q tile.
  bf16* sO = reinterpret_cast<bf16*>(smem + S::kQ);
  float inv[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    l[hr] = quad_sum(l[hr]);
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
  constexpr int kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const GroupRows gr{int64_t(n.T) * n.G, n.G, n.H, n.T, int(blockIdx.z), int(blockIdx.y)};
  const int64_t r0 = int64_t(gridDim.x - 1 - blockIdx.x) * kRows;
  const int n_kt = (visible_cmp(gr.token(min(gr.rows, r0 + kRows) - 1)) + kKeys - 1) / kKeys;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, wr = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);

  const int64_t packed = int64_t(n.H) * D;
  const CmpKv kv(n, a.k_cmp, a.v_cmp, gr.b, gr.hk);
  load_rows_async<kRows, D, kThreads>(
      sbase + S::kQ,
      [&](int r) { return r0 + r < gr.rows ? a.q.p + gr.at(r0 + r, a.q.stride, D) : nullptr; }, a.q.p);
  load_rows_async<kRows, D, kThreads>(
      sbase + S::kdO, [&](int r) { return r0 + r < gr.rows ? a.dout + gr.at(r0 + r, packed, D) : nullptr; }, a.dout);
  if (n_kt > 0) kv.load<D>(sbase + S::kK, sbase + S::kV, 0, 0);
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
  const int warp_nc = __reduce_max_sync(0xffffffffu, unsigned(max(nc[0], nc[1])));
  float dq[kDB][4];
#pragma unroll
  for (int d = 0; d < kDB; ++d) dq[d][0] = dq[d][1] = dq[d][2] = dq[d][3] = 0.f;

  pipeline(
      n_kt, [&](int kt, int stage) { kv.load<D>(sbase + S::kK, sbase + S::kV, kt, stage); },
      [&](int kt, int stage) {
        const int c0 = kt * kKeys;
        if (warp_nc <= c0) return;
        const uint32_t sK = sbase + S::kK + stage * kKeys * D * 2, sV = sbase + S::kV + stage * kKeys * D * 2;
        float s[kKeys / 8][4], dp[kKeys / 8][4];
        mma_abt<D, kKeys / 8>(s, sbase + S::kQ, wr, sK, 0, aoff, bnoff);
        mma_abt<D, kKeys / 8>(dp, sbase + S::kdO, wr, sV, 0, aoff, bnoff);
#pragma unroll
        for (int nb = 0; nb < kKeys / 8; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int hr = e >> 1;
            const float pv =
                c0 + nb * 8 + 2 * tq + (e & 1) < nc[hr] ? exp2_approx(fmaf(s[nb][e], n.scale_log2, rc[hr])) : 0.f;
            s[nb][e] = pv * (dp[nb][e] - dlt[hr]);
          }
        mma_xb<D, kKeys / 16>(dq, s, sK, 0, bkoff);
      });

  store_acc_f32<D>(dq, n.scale, [&](int r) {
    const int64_t i = r0 + wr + r;
    return i < gr.rows ? a.dq + gr.at(i, packed, D) : nullptr;
  });
}

// CTA (64 compressed keys c0.., chunk of rows, b*Hkv + hk); rows of the chunk that see none of the keys are
// skipped, and the chunk's partial sums are written even when empty (the reduction reads every chunk).
template <int D>
__global__ void __launch_bounds__(kThreads) nsa_cmp_dkv_kernel(const NsaDims n, const CmpBwdArgs a) {
  using S = DkvSmem<D>;
  constexpr int kDB = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const int b = int(blockIdx.z) / n.Hkv, hk = int(blockIdx.z) % n.Hkv, chunk = blockIdx.y;
  const GroupRows gr{int64_t(n.T) * n.G, n.G, n.H, n.T, b, hk};
  const int c0 = blockIdx.x * kKeys;
  const int wr = (threadIdx.x >> 5) * 16;

  // Row tiles rt_lo + [0, n_rt): the chunk's rows from the first that sees key c0 (token (c0 + 1)*64 - 1).
  const int64_t chunk_lo = int64_t(chunk) * a.chunk_rows, chunk_hi = min(gr.rows, chunk_lo + a.chunk_rows);
  const int64_t first = max(chunk_lo, (int64_t(c0 + 1) * kNsaBlock - 1) * n.G);
  const int64_t rt_lo = first / kRows;
  const int n_rt = first < chunk_hi ? int((chunk_hi - 1) / kRows - rt_lo + 1) : 0;

  auto load_rows = [&](int i, int stage) {
    const int64_t i0 = (rt_lo + i) * kRows;
    load_dkv_rows<D, kThreads>(
        smem, stage,
        [&](int r) {
          const int64_t row = i0 + r;
          return row < chunk_hi ? DkvRow{true, gr.at(row, a.q.stride, D), gr.scalar(row), visible_cmp(gr.token(row))}
                                : DkvRow{false, 0, 0, 0};
        },
        a.q.p, a.dout, a.lse, a.delta, 0);
  };
  const CmpKv kv(n, a.k_cmp, a.v_cmp, b, hk);
  load_tile_async<kKeys, D, kThreads>(sbase + S::kK, kv.k, kv.stride, c0, n.Tc);
  load_tile_async<kKeys, D, kThreads>(sbase + S::kV, kv.v, kv.stride, c0, n.Tc);
  if (n_rt > 0) load_rows(0, 0);
  cp_async_commit();

  float dk[kDB][4], dv[kDB][4];
  dkv_rows<D>(
      smem, wr, n_rt, n.scale_log2, load_rows,
      // The tile's last row sees the most keys: active when it sees one of this warp's.
      [&](int i, const int* nc) { return nc[int(min(chunk_hi - (rt_lo + i) * kRows, int64_t(kRows))) - 1] > c0 + wr; },
      [&](const int* nc, int col, int key) { return c0 + wr + key < nc[col]; }, dk, dv);

  const int64_t part_row0 = ((int64_t(chunk) * n.B + b) * n.Hkv + hk) * n.Tc + c0 + wr;
  auto row = [&](float* base, int r) { return c0 + wr + r < n.Tc ? base + (part_row0 + r) * D : nullptr; };
  store_acc_f32<D>(dk, n.scale, [&](int r) { return row(a.part_k, r); });
  store_acc_f32<D>(dv, 1.f, [&](int r) { return row(a.part_v, r); });
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
