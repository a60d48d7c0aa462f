// Device helpers of the NSA kernels: gathered row tiles (a tile's rows are (token, head) pairs of one K/V
// group, or the tokens that selected a block, so rows are addressed one by one), the selection's order, the
// warp-level tile products and online softmax of the forward and dQ kernels, the transposed dK/dV tile both
// backward kernels share, and the cp.async double-buffering loop.
#pragma once
#include <climits>

#include "kernels/attention_common.cuh"
#include "kernels/cuda_check.h"
#include "kernels/mma_sm80.cuh"
#include "kernels/nsa_launch.h"

namespace gfwa::cuda::detail {

// Loads R rows of D bf16 into a swizzled tile (mma_sm80.cuh layout); row_ptr(r) is row r's global address,
// or nullptr for a row past the end (zero-filled). `any` is a valid address for the skipped copies.
template <int R, int D, int NTHREADS, class RowPtr>
__device__ __forceinline__ void load_rows_async(uint32_t dst, const RowPtr& row_ptr, const bf16* any) {
  constexpr int kChunks = D / 8, kStep = NTHREADS / kChunks;
  static_assert(NTHREADS % kChunks == 0 && R % kStep == 0, "row loader shape");
  const int c = threadIdx.x % kChunks, r = threadIdx.x / kChunks;
#pragma unroll
  for (int k = 0; k < R / kStep; ++k) {
    const bf16* src = row_ptr(r + k * kStep);
    cp_async16(dst + swz<D>(r + k * kStep, c), src ? src + c * 8 : any, src != nullptr);
  }
}

// Writes a warp's 16 rows r0..r0+15 of a swizzled tile to row_ptr(r) (nullptr: skipped).
template <int D, class RowPtr>
__device__ __forceinline__ void store_rows16_to(const bf16* tile, int r0, int lane, const RowPtr& row_ptr) {
  constexpr int kChunks = D / 8;
  const char* base = reinterpret_cast<const char*>(tile);
#pragma unroll
  for (int idx = lane; idx < 16 * kChunks; idx += 32) {
    const int r = r0 + idx / kChunks, c = idx % kChunks;
    bf16* dst = row_ptr(r);
    if (dst) *reinterpret_cast<uint4*>(dst + c * 8) = *reinterpret_cast<const uint4*>(base + swz<D>(r, c));
  }
}

// The selection's order: more important first, the lower block on a tie. Values are probabilities (>= 0);
// an empty slot has value -1 and never wins.
__device__ __forceinline__ bool nsa_ranks_before(float va, int ia, float vb, int ib) {
  return va > vb || (va == vb && ia < ib);
}

// Exclusive prefix sum of v over the block (blockDim.x a multiple of 32, <= 1024); *total gets the sum.
// `scratch` holds 32 ints; the trailing barrier lets the caller reuse it at once.
__device__ __forceinline__ int block_exclusive_scan(int v, int* scratch, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  int x = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) scratch[warp] = x;
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < nw; ++w) {
    const int s = scratch[w];
    if (w < warp) before += s;
    all += s;
  }
  __syncthreads();
  *total = all;
  return before + x - v;
}

// Opts a kernel into `bytes` of dynamic shared memory (above the 48 KB default).
template <class Kernel>
void set_smem(Kernel k, int bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

// Shared memory of the two transposed backward kernels (compressed and selected dK/dV): a K and a V tile of
// 64 keys, and 2 stages of 64 query rows (Q, dO, -lse*log2e, delta, and one int per row for the mask).
template <int D>
struct DkvSmem {
  static constexpr int kK = 0, kV = kK + 64 * D * 2, kQ = kV + 64 * D * 2, kdO = kQ + 2 * 64 * D * 2,
                       kLse = kdO + 2 * 64 * D * 2, kDelta = kLse + 2 * 64 * 4, kMask = kDelta + 2 * 64 * 4,
                       kBytes = kMask + 2 * 64 * 4;
};

// One query row of a transposed backward tile: where its q row and its [B,T,H] scalars are, and the int the
// mask reads (compressed: visible keys; selected: the token).
struct DkvRow {
  bool ok;       // false: padding past the rows of the CTA
  int64_t q;     // element offset of the row in q
  int64_t head;  // (b*T + t)*H + h: the row in [B,T,H] tensors (and in packed dO, times D)
  int mask;
};

// Loads the 64 query rows row(0..63) into `stage` of DkvSmem: Q, dO (packed), -lse*log2e, delta, the mask int
// (mask_fill, and zeros elsewhere, for padding rows).
template <int D, int NTHREADS, class RowFn>
__device__ __forceinline__ void load_dkv_rows(unsigned char* smem, int stage, const RowFn& row, const bf16* q,
                                              const bf16* dout, const float* lse, const float* delta, int mask_fill) {
  using S = DkvSmem<D>;
  const uint32_t sbase = smem_addr(smem);
  load_rows_async<64, D, NTHREADS>(
      sbase + S::kQ + stage * 64 * D * 2,
      [&](int r) {
        const DkvRow x = row(r);
        return x.ok ? q + x.q : nullptr;
      },
      q);
  load_rows_async<64, D, NTHREADS>(
      sbase + S::kdO + stage * 64 * D * 2,
      [&](int r) {
        const DkvRow x = row(r);
        return x.ok ? dout + x.head * D : nullptr;
      },
      dout);
  float* sl = reinterpret_cast<float*>(smem + S::kLse) + stage * 64;
  float* sd = reinterpret_cast<float*>(smem + S::kDelta) + stage * 64;
  int* sm = reinterpret_cast<int*>(smem + S::kMask) + stage * 64;
  for (int r = threadIdx.x; r < 64; r += NTHREADS) {
    const DkvRow x = row(r);
    sl[r] = x.ok ? -lse[x.head] * kLog2e : 0.f;
    sd[r] = x.ok ? delta[x.head] : 0.f;
    sm[r] = x.ok ? x.mask : mask_fill;
  }
}

// ---- Warp-level tile products (mma_sm80.cuh layouts; this thread holds rows g, g+8 of each 16-row block).

// s = rows r0..r0+15 of tile A times rows n0..n0+8*NB-1 of tile B, transposed (both row-major, D columns):
// NB n-blocks of 8 keys, fp32.
template <int D, int NB>
__device__ __forceinline__ void mma_abt(float (&s)[NB][4], uint32_t sA, int r0, uint32_t sB, int n0, uint32_t aoff,
                                        uint32_t bnoff) {
  static_assert(NB % 2 == 0, "n-blocks come in pairs");
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    ldsm_x4(a, a_addr<D>(sA, r0, kk, aoff));
#pragma unroll
    for (int n2 = 0; n2 < NB / 2; ++n2) {
      uint32_t b[4];
      ldsm_x4(b, bn_addr<D>(sB, n0 + 16 * n2, kk, bnoff));
      mma_bf16(s[2 * n2], a, b[0], b[1]);
      mma_bf16(s[2 * n2 + 1], a, b[2], b[3]);
    }
  }
}

// acc (16 rows x D) += x (16 rows x 16*KB, fp32 fragments rounded to bf16) times rows 16*k0 .. 16*(k0+KB)-1
// of tile B (one row per k, D columns): P.V, dS.K, and in the transposed backward P^T.dO, dS^T.Q.
template <int D, int KB>
__device__ __forceinline__ void mma_xb(float (&acc)[D / 8][4], const float (&x)[2 * KB][4], uint32_t sB, int k0,
                                       uint32_t bkoff) {
#pragma unroll
  for (int kk = 0; kk < KB; ++kk) {
    const uint32_t a[4] = {pack_bf16(x[2 * kk][0], x[2 * kk][1]), pack_bf16(x[2 * kk][2], x[2 * kk][3]),
                           pack_bf16(x[2 * kk + 1][0], x[2 * kk + 1][1]),
                           pack_bf16(x[2 * kk + 1][2], x[2 * kk + 1][3])};
#pragma unroll
    for (int d2 = 0; d2 < D / 16; ++d2) {
      uint32_t b[4];
      ldsm_x4_trans(b, bk_addr<D>(sB, k0 + kk, d2, bkoff));
      mma_bf16(acc[2 * d2], a, b[0], b[1]);
      mma_bf16(acc[2 * d2 + 1], a, b[2], b[3]);
    }
  }
}

// One online-softmax step of this thread's two rows: s holds base-2 logits (-inf where masked) and becomes
// the probabilities against the running max m; the sum l and the output o are rescaled to it.
template <int D, int NB>
__device__ __forceinline__ void softmax_step(float (&s)[NB][4], float (&m)[2], float (&l)[2], float (&o)[D / 8][4]) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float x = m[hr];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) x = fmaxf(x, fmaxf(s[nb][2 * hr], s[nb][2 * hr + 1]));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
    const float base = x == -INFINITY ? 0.f : x;  // nothing visible yet: the row stays all-zero
    const float corr = exp2_approx(m[hr] - base);
    m[hr] = x;
    l[hr] *= corr;
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      o[d][2 * hr] *= corr;
      o[d][2 * hr + 1] *= corr;
    }
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int e = 2 * hr; e < 2 * hr + 2; ++e) {
        s[nb][e] = exp2_approx(s[nb][e] - base);
        l[hr] += s[nb][e];
      }
  }
}

// The transposed backward of one tile (rows = this warp's 16 keys at row wr of the K/V tiles, columns = the
// 64 query rows of the Q/dO tiles): P^T = exp2(K Q^T * scale_log2 + nlse), dS^T = P^T (V dO^T - delta),
// masked to visible(col, key row g or g+8); dv += P^T dO, dk += dS^T Q (dk still to be scaled).
template <int D, class Visible>
__device__ __forceinline__ void dkv_tile(uint32_t sK, uint32_t sV, int wr, uint32_t sQ, uint32_t sdO, const float* nlse,
                                         const float* delta, float scale_log2, const Visible& visible,
                                         float (&dk)[D / 8][4], float (&dv)[D / 8][4]) {
  const int lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
  const uint32_t aoff = a_off<D>(lane), bnoff = bn_off<D>(lane), bkoff = bk_off<D>(lane);
  float st[8][4], dpt[8][4];
  mma_abt<D, 8>(st, sK, wr, sQ, 0, aoff, bnoff);
  mma_abt<D, 8>(dpt, sV, wr, sdO, 0, aoff, bnoff);
#pragma unroll
  for (int nq = 0; nq < 8; ++nq)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = nq * 8 + 2 * tq + (e & 1);
      const float pv = visible(col, g + 8 * (e >> 1)) ? exp2_approx(fmaf(st[nq][e], scale_log2, nlse[col])) : 0.f;
      dpt[nq][e] = pv * (dpt[nq][e] - delta[col]);
      st[nq][e] = pv;
    }
  mma_xb<D, 4>(dv, st, sdO, 0, bkoff);
  mma_xb<D, 4>(dk, dpt, sQ, 0, bkoff);
}

// cp.async double buffering: for i in [0, n), load(i + 1, stage ^ 1) is in flight while body(i, stage) runs.
// The caller has issued and committed load(0, 0) (with whatever else it loads once).
template <class Load, class Body>
__device__ __forceinline__ void pipeline(int n, const Load& load, const Body& body) {
  for (int i = 0, stage = 0; i < n; ++i, stage ^= 1) {
    if (i + 1 < n) {
      load(i + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    body(i, stage);
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();
  __syncthreads();  // with n == 0, the caller's copies may still be landing
}

// The transposed backward of a CTA over n tiles of 64 query rows (DkvSmem; the caller has issued the K/V
// tiles and load(0, 0) and committed them; load(i, stage) fills a stage as load_dkv_rows does): dk, dv of
// this warp's 16 keys at row wr. active(i, mask) says whether a row of tile i can see one of the warp's
// keys (else the tile's arithmetic is skipped); visible(mask, col, key) is the mask of one pair.
template <int D, class Load, class Active, class Visible>
__device__ __forceinline__ void dkv_rows(unsigned char* smem, int wr, int n, float scale_log2, const Load& load,
                                         const Active& active, const Visible& visible, float (&dk)[D / 8][4],
                                         float (&dv)[D / 8][4]) {
  using S = DkvSmem<D>;
  const uint32_t sbase = smem_addr(smem);
#pragma unroll
  for (int d = 0; d < D / 8; ++d)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[d][e] = dv[d][e] = 0.f;
  pipeline(n, load, [&](int i, int stage) {
    const int* mask = reinterpret_cast<const int*>(smem + S::kMask) + stage * 64;
    if (!active(i, mask)) return;
    dkv_tile<D>(sbase + S::kK, sbase + S::kV, wr, sbase + S::kQ + stage * 64 * D * 2,
                sbase + S::kdO + stage * 64 * D * 2, reinterpret_cast<const float*>(smem + S::kLse) + stage * 64,
                reinterpret_cast<const float*>(smem + S::kDelta) + stage * 64, scale_log2,
                [&](int col, int key) { return visible(mask, col, key); }, dk, dv);
  });
}

// Stores this thread's rows (g, g+8 of a 16-row block) of an fp32 accumulator times `scale` to
// row_ptr(g) and row_ptr(g + 8) (nullptr: skipped).
template <int D, class RowPtr>
__device__ __forceinline__ void store_acc_f32(const float (&acc)[D / 8][4], float scale, const RowPtr& row_ptr) {
  const int lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float* dst = row_ptr(g + 8 * hr);
    if (!dst) continue;
#pragma unroll
    for (int d = 0; d < D / 8; ++d)
      *reinterpret_cast<float2*>(dst + d * 8 + 2 * tq) = make_float2(acc[d][2 * hr] * scale, acc[d][2 * hr + 1] * scale);
  }
}

}  // namespace gfwa::cuda::detail
