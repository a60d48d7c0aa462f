// NSA's elementwise kernels (docs/nsa.md): the gated sum of the three branches, its backward (gate
// gradients, each branch's dO and softmax delta), and the last sums of the gradients from the three branches.
#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/nsa_common.cuh"

namespace gfwa::cuda::detail {
namespace {

// 8 bf16 as fp32 and back (16-byte accesses).
__device__ __forceinline__ void load8(const bf16* p, float (&x)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[i]));
    x[2 * i] = f.x;
    x[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void store8(bf16* p, const float (&x)[8]) {
  uint4 u;
  u.x = pack_bf16(x[0], x[1]);
  u.y = pack_bf16(x[2], x[3]);
  u.z = pack_bf16(x[4], x[5]);
  u.w = pack_bf16(x[6], x[7]);
  *reinterpret_cast<uint4*>(p) = u;
}

// Thread per 8 values of a [B, T, heads, D] tensor: its (b*T + t), head and first feature.
struct Chunk {
  int64_t bt;
  int h, d;
};
__device__ __forceinline__ Chunk chunk_of(int64_t e, int heads, int D) {
  const int per_row = D / 8;
  const int64_t r = e / per_row;
  return {r / heads, int(r % heads), int(e % per_row) * 8};
}

__global__ void nsa_mix_kernel(const NsaDims n, const float* g_cmp, const float* g_sel, const float* g_win,
                               const bf16* o_cmp, const bf16* o_sel, const bf16* o_win, bf16* o, int64_t o_stride) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= int64_t(n.B) * n.T * n.H * n.D / 8) return;
  const Chunk c = chunk_of(e, n.H, n.D);
  const int64_t r = c.bt * n.H + c.h;
  float xc[8], xs[8], xw[8], y[8];
  load8(o_cmp + e * 8, xc);
  load8(o_sel + e * 8, xs);
  load8(o_win + e * 8, xw);
  const float gc = g_cmp[r], gs = g_sel[r], gw = g_win[r];
#pragma unroll
  for (int i = 0; i < 8; ++i) y[i] = gc * xc[i] + gs * xs[i] + gw * xw[i];
  store8(o + c.bt * o_stride + int64_t(c.h) * n.D + c.d, y);
}

// Warp per (b, t, h) row.
__global__ void __launch_bounds__(256) nsa_mix_bwd_kernel(const NsaDims n, const MixBwdArgs a) {
  const int64_t r = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= int64_t(n.B) * n.T * n.H) return;
  const int64_t bt = r / n.H;
  const int h = int(r % n.H);
  const bf16* dout = a.dout.p + bt * a.dout.stride + int64_t(h) * n.D;
  const float gc = a.g_cmp[r], gs = a.g_sel[r], gw = a.g_win[r];
  // dg_b = dout . o_b; delta_b = rowsum(dO_b * o_b) from the bf16 dO_b that the branch's dP = dO_b . v reads, so
  // the rows of dS = P (dP - delta) sum to 0 up to fp32 rounding (from g_b * (dout . o_b) they are off by dO_b's
  // rounding: at T = 1, where dq and dk are exactly 0, that error was all there was).
  float dc = 0.f, ds = 0.f, dw = 0.f, tc = 0.f, ts = 0.f;
  for (int d = 2 * lane; d < n.D; d += 64) {
    const int64_t e = r * n.D + d;
    const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(dout + d));
    const float2 xc = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a.o_cmp + e));
    const float2 xs = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a.o_sel + e));
    const float2 xw = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a.o_win + e));
    dc += y.x * xc.x + y.y * xc.y;
    ds += y.x * xs.x + y.y * xs.y;
    dw += y.x * xw.x + y.y * xw.y;
    const uint32_t pc = pack_bf16(gc * y.x, gc * y.y), ps = pack_bf16(gs * y.x, gs * y.y);
    const float2 yc = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&pc));
    const float2 ys = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&ps));
    tc += yc.x * xc.x + yc.y * xc.y;
    ts += ys.x * xs.x + ys.y * xs.y;
    *reinterpret_cast<uint32_t*>(a.dout_cmp + e) = pc;
    *reinterpret_cast<uint32_t*>(a.dout_sel + e) = ps;
    *reinterpret_cast<uint32_t*>(a.dout_win + e) = pack_bf16(gw * y.x, gw * y.y);
  }
  dc = warp_sum(dc);
  ds = warp_sum(ds);
  dw = warp_sum(dw);
  tc = warp_sum(tc);
  ts = warp_sum(ts);
  if (lane == 0) {
    a.dg_cmp[r] = dc;
    a.dg_sel[r] = ds;
    a.dg_win[r] = dw;
    a.delta_cmp[r] = tc;
    a.delta_sel[r] = ts;
  }
}

__global__ void nsa_dq_sum_kernel(const NsaDims n, const GradSumArgs a) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= int64_t(n.B) * n.T * n.H * n.D / 8) return;
  const Chunk c = chunk_of(e, n.H, n.D);
  float w[8], y[8];
  load8(a.dq_win + e * 8, w);
#pragma unroll
  for (int i = 0; i < 8; ++i) y[i] = a.dq_acc[e * 8 + i] + w[i];
  store8(a.dq + c.bt * a.dq_stride + int64_t(c.h) * n.D + c.d, y);
}

// dk of token t, K/V head hk: the selected branch's item partials of block t/64 (in item order), the sliding
// branch's dk (attention.h summed it over the group), and the compressed branch's block gradient / 64.
__global__ void nsa_dkv_sum_kernel(const NsaDims n, const GradSumArgs a) {
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= int64_t(n.B) * n.T * n.Hkv * n.D / 8) return;
  const Chunk c = chunk_of(e, n.Hkv, n.D);
  const int b = int(c.bt / n.T), t = int(c.bt % n.T), blk = t / kNsaBlock;
  const int64_t bh = int64_t(b) * n.Hkv + c.h;
  float k[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  const int* item_off = a.item_off + bh * (n.Tb + 1);
  for (int i = item_off[blk]; i < item_off[blk + 1]; ++i) {
    const int64_t p = ((bh * a.max_items + i) * kNsaBlock + t % kNsaBlock) * n.D + c.d;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      k[j] += a.part_k[p + j];
      v[j] += a.part_v[p + j];
    }
  }
  float wk[8], wv[8];
  load8(a.dk_win + e * 8, wk);
  load8(a.dv_win + e * 8, wv);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    k[j] += wk[j];
    v[j] += wv[j];
  }
  if (blk < n.Tc) {
    const int64_t p = ((int64_t(b) * n.Tc + blk) * n.Hkv + c.h) * n.D + c.d;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      k[j] += a.dk_cmp[p + j] * (1.f / kNsaBlock);
      v[j] += a.dv_cmp[p + j] * (1.f / kNsaBlock);
    }
  }
  store8(a.dk + c.bt * a.dk_stride + int64_t(c.h) * n.D + c.d, k);
  store8(a.dv + c.bt * a.dv_stride + int64_t(c.h) * n.D + c.d, v);
}

unsigned blocks_for(int64_t threads) { return unsigned(ceil_div(threads, 256)); }

}  // namespace

void launch_nsa_mix(const NsaDims& n, const float* g_cmp, const float* g_sel, const float* g_win, const bf16* o_cmp,
                    const bf16* o_sel, const bf16* o_win, bf16* o, int64_t o_stride, cudaStream_t st) {
  const int64_t chunks = int64_t(n.B) * n.T * n.H * n.D / 8;
  nsa_mix_kernel<<<blocks_for(chunks), 256, 0, st>>>(n, g_cmp, g_sel, g_win, o_cmp, o_sel, o_win, o, o_stride);
  CUDA_CHECK_LAUNCH();
}

void launch_nsa_mix_bwd(const NsaDims& n, const MixBwdArgs& a, cudaStream_t st) {
  const int64_t rows = int64_t(n.B) * n.T * n.H;
  nsa_mix_bwd_kernel<<<unsigned(ceil_div(rows, 8)), 256, 0, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
}

void launch_nsa_grad_sum(const NsaDims& n, const GradSumArgs& a, cudaStream_t st) {
  nsa_dq_sum_kernel<<<blocks_for(int64_t(n.B) * n.T * n.H * n.D / 8), 256, 0, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
  nsa_dkv_sum_kernel<<<blocks_for(int64_t(n.B) * n.T * n.Hkv * n.D / 8), 256, 0, st>>>(n, a);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda::detail
