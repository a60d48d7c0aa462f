// NSA block selection (docs/nsa.md).
//   CTA per tile of tokens of one K/V group (64 / G tokens, or one token in passes of 64 heads):
//             the compressed scores again (mma), p = exp(s - lse_cmp), each token's importance = the sum of
//             p over its G heads (fixed order, through shared memory), merged tile by tile into a running
//             top-(k-1) list per token (a warp per token; most tiles change nothing and are skipped).
#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/nsa_common.cuh"

namespace gfwa::cuda::detail {
namespace {

constexpr int kThreads = 128, kWarps = 4, kRows = 64;

// ---------------------------------------------------------------------------------------------------- top-k

struct TopkSmem {
  int q, k, p, imp, topv, topi, ntop, bytes;
  __host__ __device__ TopkSmem(int D, int mt, int keep) {
    q = 0;
    k = q + kRows * D * 2;
    p = k + kRows * D * 2;
    imp = p + kRows * (kRows + 1) * 4;  // p: [64 rows][65] fp32 (padded against bank conflicts)
    topv = imp + mt * kRows * 4;
    topi = topv + mt * keep * 4;
    ntop = topi + mt * keep * 4;
    bytes = ntop + mt * 4;
  }
};

// Tokens t0 .. t0 + nt - 1 of (b, hk); their rows (token, head) are the CTA's rows t0*G + [0, nt*G), taken in
// passes of 64. `mt` tokens per CTA (64 / G, or 1 when G > 64).
template <int D>
__global__ void __launch_bounds__(kThreads) nsa_topk_kernel(const NsaDims n, const TopkArgs a, int mt) {
  constexpr int kNB = kRows / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sbase = smem_addr(smem);
  const int keep = n.S - 1;  // blocks chosen by importance; the own block is added at the end
  const TopkSmem L(D, mt, keep);
  float* sP = reinterpret_cast<float*>(smem + L.p);
  float* sImp = reinterpret_cast<float*>(smem + L.imp);
  float* sTopV = reinterpret_cast<float*>(smem + L.topv);
  int* sTopI = reinterpret_cast<int*>(smem + L.topi);
  int* sNtop = reinterpret_cast<int*>(smem + L.ntop);

  const int hk = blockIdx.y, b = blockIdx.z, G = n.G;
  const int t0 = blockIdx.x * mt, nt = min(mt, n.T - t0), rows = nt * G, passes = (rows + kRows - 1) / kRows;
  const int n_kt = keep > 0 ? ((t0 + nt - 1) / kNsaBlock + kRows - 1) / kRows : 0;  // candidate tiles
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3, wr = warp * 16;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane);
  const int64_t bT = int64_t(b) * n.T, kv_stride = int64_t(n.Hkv) * D;
  const bf16* gK = a.k_cmp + int64_t(b) * n.Tc * kv_stride + hk * D;
  for (int i = threadIdx.x; i < nt; i += kThreads) sNtop[i] = 0;

  for (int kt = 0; kt < n_kt; ++kt) {
    for (int i = threadIdx.x; i < nt * kRows; i += kThreads) sImp[i] = 0.f;
    for (int pass = 0; pass < passes; ++pass) {
      if (pass == 0) load_tile_async<kRows, D, kThreads>(sbase + L.k, gK, kv_stride, kt * kRows, n.Tc);
      if (passes > 1 || kt == 0)
        load_rows_async<kRows, D, kThreads>(
            sbase + L.q,
            [&](int r) {
              const int rl = pass * kRows + r;
              return rl < rows ? a.q.p + (bT + t0 + rl / G) * a.q.stride + int64_t(hk * G + rl % G) * D : nullptr;
            },
            a.q.p);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();

      float s[kNB][4];
      mma_abt<D, kNB>(s, sbase + L.q, wr, sbase + L.k, 0, aoff, bnoff);
      // p of this thread's rows over the candidates: blocks that end before the token's own block.
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int rl = pass * kRows + wr + g + 8 * hr;
        const bool ok = rl < rows;
        const int t = t0 + rl / G;
        const int ncand = ok ? t / kNsaBlock : 0;
        const float rc = ok ? -a.lse_cmp[(bT + t) * n.H + hk * G + rl % G] * kLog2e : 0.f;
#pragma unroll
        for (int nb = 0; nb < kNB; ++nb)
#pragma unroll
          for (int e2 = 0; e2 < 2; ++e2) {
            const int col = nb * 8 + 2 * tq + e2;
            sP[(wr + g + 8 * hr) * (kRows + 1) + col] =
                kt * kRows + col < ncand ? exp2_approx(fmaf(s[nb][2 * hr + e2], n.scale_log2, rc)) : 0.f;
          }
      }
      __syncthreads();
      // importance[token][col] += p summed over the token's heads in this pass, in head order.
      for (int i = threadIdx.x; i < nt * kRows; i += kThreads) {
        const int tok = i / kRows, col = i % kRows;
        const int lo = max(tok * G, pass * kRows), hi = min(tok * G + G, pass * kRows + kRows);
        float acc = 0.f;
        for (int rl = lo; rl < hi; ++rl) acc += sP[(rl - pass * kRows) * (kRows + 1) + col];
        sImp[i] += acc;
      }
      __syncthreads();
    }

    // Merge this tile's candidates into each token's list (best first). A warp per token.
    for (int tok = warp; tok < nt; tok += kWarps) {
      const int ncand = (t0 + tok) / kNsaBlock;
      float* tv = sTopV + tok * keep;
      int* ti = sTopI + tok * keep;
      const int cnt = sNtop[tok];
      float v[4];
      int id[4];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = kt * kRows + lane + 32 * e, j = lane + 32 * e;
        v[e] = c < ncand ? sImp[tok * kRows + lane + 32 * e] : -1.f;
        id[e] = c;
        v[2 + e] = j < cnt ? tv[j] : -1.f;
        id[2 + e] = j < cnt ? ti[j] : INT_MAX;
      }
      bool enters = false;
#pragma unroll
      for (int e = 0; e < 2; ++e)
        enters |= v[e] >= 0.f && (cnt < keep || nsa_ranks_before(v[e], id[e], tv[keep - 1], ti[keep - 1]));
      if (!__any_sync(0xffffffffu, enters)) continue;
      __syncwarp();  // every lane has read the list before lane 0 rewrites it
      int next = 0;
      for (int round = 0; round < keep; ++round) {
        float bv = -1.f;
        int bi = INT_MAX;
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (v[e] >= 0.f && nsa_ranks_before(v[e], id[e], bv, bi)) {
            bv = v[e];
            bi = id[e];
          }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
          const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
          const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
          if (nsa_ranks_before(ov, oi, bv, bi)) {
            bv = ov;
            bi = oi;
          }
        }
        if (bv < 0.f) break;  // fewer valid blocks than slots
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (id[e] == bi) v[e] = -1.f;  // block ids are unique among the items: only the winner
        if (lane == 0) {
          tv[round] = bv;
          ti[round] = bi;
        }
        next = round + 1;
      }
      if (lane == 0) sNtop[tok] = next;
      __syncwarp();
    }
    __syncthreads();
  }
  __syncthreads();  // sNtop's initial zeros when no tile ran

  // idx row: the list's blocks in ascending order (rank = how many are lower), the own block, then -1.
  for (int tok = warp; tok < nt; tok += kWarps) {
    const int t = t0 + tok, cnt = sNtop[tok];
    const int* ti = sTopI + tok * keep;
    int32_t* out = a.idx + ((bT + t) * n.Hkv + hk) * n.S;
    for (int j = lane; j < cnt; j += 32) {
      const int x = ti[j];
      int rank = 0;
      for (int i = 0; i < cnt; ++i) rank += ti[i] < x;
      out[rank] = x;
    }
    for (int j = cnt + lane; j < n.S; j += 32) out[j] = j == cnt ? t / kNsaBlock : -1;
  }
}

template <int D>
void topk(const NsaDims& n, const TopkArgs& a, cudaStream_t st) {
  const int mt = n.G <= kRows ? kRows / n.G : 1;
  const TopkSmem L(D, mt, n.S - 1);
  set_smem(nsa_topk_kernel<D>, L.bytes);
  const dim3 grid(unsigned(ceil_div(n.T, mt)), n.Hkv, n.B);
  nsa_topk_kernel<D><<<grid, kThreads, L.bytes, st>>>(n, a, mt);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_nsa_topk(const NsaDims& n, const TopkArgs& a, cudaStream_t st) {
  if (n.D == 64)
    topk<64>(n, a, st);
  else
    topk<128>(n, a, st);
}

}  // namespace gfwa::cuda::detail
