#include "kernels/qk_norm_rope.cuh"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/reduce.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kPpt = 2;  // (c0, c0 + D/2) pairs per thread in the generic backward: d <= 2 * 1024 * kPpt

__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + __expf(-x)); }

// Value of the (shifted) k at channel c of token n (position t): a*k_t + (1-a)*k_{t-1}.
__device__ __forceinline__ float shifted(const __nv_bfloat16* x, size_t n, int t, int c, int ld, float a) {
  const float cur = to_f(x[n * ld + c]);
  if (a < 0.0f) return cur;  // no shift
  const float prev = t > 0 ? to_f(x[(n - 1) * ld + c]) : 0.0f;
  return a * cur + (1.0f - a) * prev;
}

// The generic forward (any D): one warp per token.
__global__ void qk_forward_kernel(QkvShape sh, const __nv_bfloat16* __restrict__ qkv, const float* __restrict__ pre_k,
                                  const float* __restrict__ pre_v, const __nv_bfloat16* __restrict__ q_w,
                                  const __nv_bfloat16* __restrict__ k_w, const float2* __restrict__ rope,
                                  __nv_bfloat16* __restrict__ out, float* __restrict__ rstd_q,
                                  float* __restrict__ rstd_k) {
  const int N = sh.B * sh.T, qd = sh.H * sh.D, kd = sh.Hkv * sh.D, half = sh.D / 2, ld = qd + 2 * kd;
  const size_t n = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (n >= size_t(N)) return;
  const int t = int(n % sh.T);
  const __nv_bfloat16* q = qkv + n * ld;
  const __nv_bfloat16* kbase = qkv + qd;  // channel c of k at token m: kbase[m * ld + c]
  // k's channels and pairs are a prefix of q's (kd <= qd): one loop serves both.
  float ssq = 0.0f, ssk = 0.0f;
  for (int c = lane; c < qd; c += 32) {
    const float qv = to_f(q[c]);
    ssq += qv * qv;
    if (c < kd) {
      const float a = pre_k ? sigm(pre_k[n * sh.pre_ld + c / sh.D]) : -1.0f;
      const float kv = shifted(kbase, n, t, c, ld, a);
      ssk += kv * kv;
    }
  }
  const float rq = rsqrtf(warp_sum(ssq) / qd + sh.eps), rk = rsqrtf(warp_sum(ssk) / kd + sh.eps);
  __nv_bfloat16* o = out + n * ld;
  for (int p = lane; p < qd / 2; p += 32) {
    const int h = p / half, i = p % half, c0 = h * sh.D + i, c1 = c0 + half;
    const float2 cs = rope[size_t(t) * half + i];
    const float q0 = to_f(q[c0]) * rq * to_f(q_w[c0]), q1 = to_f(q[c1]) * rq * to_f(q_w[c1]);
    o[c0] = to_bf(q0 * cs.x - q1 * cs.y);
    o[c1] = to_bf(q1 * cs.x + q0 * cs.y);
    if (p >= kd / 2) continue;
    const float a = pre_k ? sigm(pre_k[n * sh.pre_ld + h]) : -1.0f;
    const float k0 = shifted(kbase, n, t, c0, ld, a) * rk * to_f(k_w[c0]);
    const float k1 = shifted(kbase, n, t, c1, ld, a) * rk * to_f(k_w[c1]);
    o[qd + c0] = to_bf(k0 * cs.x - k1 * cs.y);
    o[qd + c1] = to_bf(k1 * cs.x + k0 * cs.y);
  }
  if (pre_v)
    for (int c = lane; c < kd; c += 32)
      o[qd + kd + c] = to_bf(shifted(qkv + qd + kd, n, t, c, ld, sigm(pre_v[n * sh.pre_ld + c / sh.D])));
  if (lane == 0) {
    rstd_q[n] = rq;
    rstd_k[n] = rk;
  }
}

// A block owns a fixed range of tokens; each thread owns up to kPpt rotation pairs of q and the same pairs of
// k where k has them (k's pairs are a prefix of q's).
__global__ void qk_backward_kernel(QkvShape sh, const __nv_bfloat16* dout,  // may alias dq / dk_s
                                   const __nv_bfloat16* __restrict__ qkv, const float* __restrict__ pre_k,
                                   const __nv_bfloat16* __restrict__ q_w, const __nv_bfloat16* __restrict__ k_w,
                                   const float2* __restrict__ rope, const float* __restrict__ rstd_q,
                                   const float* __restrict__ rstd_k, __nv_bfloat16* dq, __nv_bfloat16* dk_s,
                                   float* __restrict__ dw_partial, int rows_per_block) {
  __shared__ float scratch[32];
  const int N = sh.B * sh.T, qd = sh.H * sh.D, kd = sh.Hkv * sh.D, half = sh.D / 2, ld = qd + 2 * kd;
  const int dw_ld = qd + kd;  // q_norm | k_norm
  int c0s[kPpt];
  bool has_k[kPpt];
  float wq[kPpt][2], wk[kPpt][2], dwq[kPpt][2], dwk[kPpt][2];
#pragma unroll
  for (int j = 0; j < kPpt; ++j) {
    const int p = threadIdx.x + j * blockDim.x;
    c0s[j] = p < qd / 2 ? (p / half) * sh.D + p % half : -1;
    has_k[j] = p < kd / 2;
    for (int e = 0; e < 2; ++e) {
      const int c = c0s[j] + e * half;
      wq[j][e] = c0s[j] >= 0 ? to_f(q_w[c]) : 0.0f;
      wk[j][e] = has_k[j] ? to_f(k_w[c]) : 0.0f;
      dwq[j][e] = dwk[j][e] = 0.0f;
    }
  }
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  for (int row = r0; row < r1; ++row) {
    const size_t n = row;
    const int t = row % sh.T;
    const float rq = rstd_q[n], rk = rstd_k[n];
    float gq[kPpt][2], gk[kPpt][2], xq[kPpt][2], xk[kPpt][2], dotq = 0.0f, dotk = 0.0f;
#pragma unroll
    for (int j = 0; j < kPpt; ++j) {
      const int c0 = c0s[j];
      for (int e = 0; e < 2; ++e) gq[j][e] = gk[j][e] = xq[j][e] = xk[j][e] = 0.0f;
      if (c0 < 0) continue;
      const int c1 = c0 + half, i = c0 % sh.D;
      const float2 cs = rope[size_t(t) * half + i];
      const __nv_bfloat16* go = dout + n * ld;
      // Inverse rotation gives the gradient of the normalised vector.
      const float dq0 = to_f(go[c0]), dq1 = to_f(go[c1]);
      const float nq[2] = {dq0 * cs.x + dq1 * cs.y, dq1 * cs.x - dq0 * cs.y};
      for (int e = 0; e < 2; ++e) {
        const int c = c0 + e * half;
        xq[j][e] = to_f(qkv[n * ld + c]) * rq;
        gq[j][e] = nq[e] * wq[j][e];
        dotq += gq[j][e] * xq[j][e];
        dwq[j][e] += nq[e] * xq[j][e];
      }
      if (!has_k[j]) continue;
      const float dk0 = to_f(go[qd + c0]), dk1 = to_f(go[qd + c1]);
      const float nk[2] = {dk0 * cs.x + dk1 * cs.y, dk1 * cs.x - dk0 * cs.y};
      const float a = pre_k ? sigm(pre_k[n * sh.pre_ld + c0 / sh.D]) : -1.0f;
      for (int e = 0; e < 2; ++e) {
        const int c = c0 + e * half;
        xk[j][e] = shifted(qkv + qd, n, t, c, ld, a) * rk;
        gk[j][e] = nk[e] * wk[j][e];
        dotk += gk[j][e] * xk[j][e];
        dwk[j][e] += nk[e] * xk[j][e];
      }
    }
    dotq = block_sum(dotq, scratch) / qd;
    dotk = block_sum(dotk, scratch) / kd;
#pragma unroll
    for (int j = 0; j < kPpt; ++j) {
      if (c0s[j] < 0) continue;
      for (int e = 0; e < 2; ++e) {
        const int c = c0s[j] + e * half;
        dq[n * ld + c] = to_bf(rq * (gq[j][e] - xq[j][e] * dotq));
        if (has_k[j]) dk_s[n * ld + c] = to_bf(rk * (gk[j][e] - xk[j][e] * dotk));
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kPpt; ++j) {
    if (c0s[j] < 0) continue;
    for (int e = 0; e < 2; ++e) {
      const int c = c0s[j] + e * half;
      dw_partial[size_t(blockIdx.x) * dw_ld + c] = dwq[j][e];
      if (has_k[j]) dw_partial[size_t(blockIdx.x) * dw_ld + qd + c] = dwk[j][e];
    }
  }
}

// The common case (D % 16 == 0): a block of one thread per rotation-pair group of a token walks a range of
// tokens. A group is 8 channels of a head's first half and the 8 they pair with, q's groups then k's:
// (H + Hkv) D / 16 of them (96 at d 768, 256 at d 2048, at most kQkMaxGroups for d <= 4096). Thread gi owns
// group gi of every token: its channels are read and written with 16-byte accesses, its norm weights stay in
// registers, the next token's loads are issued before this token's reductions (block_sum2_alternating: one
// barrier a token), and in the backward its weight-gradient partials stay in registers, stored once per block.
// The forward's grid is one block per resident slot (resident_blocks); the backward's the partial blocks.
constexpr int kQkMaxGroups = 512;

// Where group gi (of the q groups, then the k groups) of a token lives: its part's first column in a
// [.., ld] row, its two channels c0 and c0 + D/2 within the part, its first pair index i0 in the head.
struct QkGroup {
  bool is_k;
  int col0, h, i0, c[2];
};

__device__ __forceinline__ QkGroup qk_group(const QkvShape& sh, int gi) {
  const int qgroups = sh.H * sh.D / 16, half = sh.D / 2, gph = half / 8;
  QkGroup g;
  g.is_k = gi >= qgroups;
  const int gl = g.is_k ? gi - qgroups : gi;
  g.col0 = g.is_k ? sh.H * sh.D : 0;
  g.h = gl / gph;
  g.i0 = (gl % gph) * 8;
  g.c[0] = g.h * sh.D + g.i0;
  g.c[1] = g.c[0] + half;
  return g;
}

// One token's loads for a group: its raw channels, the previous token's (k with token shift: the shifted k is
// recomputed, a*k_t + (1-a)*k_{t-1}), and a (< 0: no shift).
struct QkGroupIn {
  uint4 x[2], prev[2];
  float a;
};

template <bool kShift>
__device__ __forceinline__ void load_group(const QkvShape& sh, const QkGroup& g, const __nv_bfloat16* qkv,
                                           const float* pre_k, size_t n, int t, int ld, QkGroupIn& in) {
  in.a = kShift && g.is_k ? sigm(pre_k[n * sh.pre_ld + g.h]) : -1.0f;
#pragma unroll
  for (int p = 0; p < 2; ++p) {
    const size_t off = n * ld + g.col0 + g.c[p];
    in.x[p] = *reinterpret_cast<const uint4*>(qkv + off);
    if (kShift) in.prev[p] = in.a >= 0.0f && t > 0 ? *reinterpret_cast<const uint4*>(qkv + off - ld) : make_uint4(0, 0, 0, 0);
  }
}

// The group's 16 input values (shifted where k is), in channel order c0.., c0 + D/2..
template <bool kShift>
__device__ __forceinline__ void group_values(const QkGroupIn& in, float (&x)[16]) {
  unpack8(in.x[0], x);
  unpack8(in.x[1], x + 8);
  if (!kShift || in.a < 0.0f) return;
  float pv[16];
  unpack8(in.prev[0], pv);
  unpack8(in.prev[1], pv + 8);
#pragma unroll
  for (int e = 0; e < 16; ++e) x[e] = in.a * x[e] + (1.0f - in.a) * pv[e];
}

__device__ __forceinline__ void load_weights(const QkGroup& g, const __nv_bfloat16* q_w, const __nv_bfloat16* k_w,
                                             float (&w)[16]) {
  const __nv_bfloat16* wgt = g.is_k ? k_w : q_w;
  unpack8(*reinterpret_cast<const uint4*>(wgt + g.c[0]), w);
  unpack8(*reinterpret_cast<const uint4*>(wgt + g.c[1]), w + 8);
}

// The group's 8 (cos, sin) pairs at position t.
__device__ __forceinline__ void load_rope(const float2* rope, int t, int half, int i0, float2 (&cs)[8]) {
  const float4* r4 = reinterpret_cast<const float4*>(rope + size_t(t) * half + i0);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float4 v = r4[e];
    cs[2 * e] = make_float2(v.x, v.y);
    cs[2 * e + 1] = make_float2(v.z, v.w);
  }
}

template <bool kShift>  // token shift of k and v (pre_k, pre_v not null)
__global__ void __launch_bounds__(kQkMaxGroups) qk_forward_groups(
    QkvShape sh, const __nv_bfloat16* __restrict__ qkv, const float* __restrict__ pre_k,
    const float* __restrict__ pre_v, const __nv_bfloat16* __restrict__ q_w, const __nv_bfloat16* __restrict__ k_w,
    const float2* __restrict__ rope, __nv_bfloat16* __restrict__ out, float* __restrict__ rstd_q,
    float* __restrict__ rstd_k, int rows_per_block) {
  __shared__ float2 slots[2][32];
  const int N = sh.B * sh.T, qd = sh.H * sh.D, kd = sh.Hkv * sh.D, half = sh.D / 2, ld = qd + 2 * kd;
  const int gi = threadIdx.x;
  const bool active = gi < (qd + kd) / 16;
  const QkGroup g = qk_group(sh, active ? gi : 0);
  float w[16];
  load_weights(g, q_w, k_w, w);
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  QkGroupIn next;
  if (r0 < r1 && active) load_group<kShift>(sh, g, qkv, pre_k, size_t(r0), r0 % sh.T, ld, next);
  for (int row = r0; row < r1; ++row) {
    const size_t n = row;
    const int t = row % sh.T;
    const QkGroupIn in = next;
    if (row + 1 < r1 && active) load_group<kShift>(sh, g, qkv, pre_k, n + 1, (row + 1) % sh.T, ld, next);
    float x[16], ss = 0.0f;
    float2 cs[8];
    if (active) {
      load_rope(rope, t, half, g.i0, cs);  // in flight across the reduction
      group_values<kShift>(in, x);
#pragma unroll
      for (int e = 0; e < 16; ++e) ss += x[e] * x[e];
    }
    const float2 tot = block_sum2_alternating(g.is_k ? 0.0f : ss, g.is_k ? ss : 0.0f, slots, row & 1);
    const float rq = rsqrtf(tot.x / qd + sh.eps), rk = rsqrtf(tot.y / kd + sh.eps);
    if (active) {
      const float r = g.is_k ? rk : rq;
      float o[16];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float y0 = x[e] * r * w[e], y1 = x[8 + e] * r * w[8 + e];
        o[e] = y0 * cs[e].x - y1 * cs[e].y;
        o[8 + e] = y1 * cs[e].x + y0 * cs[e].y;
      }
      *reinterpret_cast<uint4*>(out + n * ld + g.col0 + g.c[0]) = pack8(o);
      *reinterpret_cast<uint4*>(out + n * ld + g.col0 + g.c[1]) = pack8(o + 8);
    }
    if (kShift && gi < kd / 8) {  // v's shifted copy, 8 channels a thread (kd / 8 <= the groups)
      const size_t off = n * ld + qd + kd + 8 * gi;
      const float a = sigm(pre_v[n * sh.pre_ld + 8 * gi / sh.D]);
      float cur[8], prev[8] = {};
      unpack8(*reinterpret_cast<const uint4*>(qkv + off), cur);
      if (t > 0) unpack8(*reinterpret_cast<const uint4*>(qkv + off - ld), prev);
#pragma unroll
      for (int e = 0; e < 8; ++e) cur[e] = a * cur[e] + (1.0f - a) * prev[e];
      *reinterpret_cast<uint4*>(out + off) = pack8(cur);
    }
    if (gi == 0) {
      rstd_q[n] = rq;
      rstd_k[n] = rk;
    }
  }
}

template <bool kShift>  // token shift of k (pre_k not null)
__global__ void __launch_bounds__(kQkMaxGroups) qk_backward_groups(
    QkvShape sh, const __nv_bfloat16* dout,  // may alias dq / dk_s: a thread reads its channels before writing them
    const __nv_bfloat16* __restrict__ qkv, const float* __restrict__ pre_k, const __nv_bfloat16* __restrict__ q_w,
    const __nv_bfloat16* __restrict__ k_w, const float2* __restrict__ rope, const float* __restrict__ rstd_q,
    const float* __restrict__ rstd_k, __nv_bfloat16* dq, __nv_bfloat16* dk_s, float* __restrict__ dw_partial,
    int rows_per_block) {
  __shared__ float2 slots[2][32];
  const int N = sh.B * sh.T, qd = sh.H * sh.D, kd = sh.Hkv * sh.D, half = sh.D / 2, ld = qd + 2 * kd;
  const int gi = threadIdx.x;
  const bool active = gi < (qd + kd) / 16;
  const QkGroup g = qk_group(sh, active ? gi : 0);
  float w[16], dw[16] = {};
  load_weights(g, q_w, k_w, w);
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  QkGroupIn next;
  uint4 next_du[2];
  float next_r = 0.0f;
  auto load_token = [&](int row) {
    const size_t n = row;
    load_group<kShift>(sh, g, qkv, pre_k, n, row % sh.T, ld, next);
#pragma unroll
    for (int p = 0; p < 2; ++p) next_du[p] = *reinterpret_cast<const uint4*>(dout + n * ld + g.col0 + g.c[p]);
    next_r = g.is_k ? rstd_k[n] : rstd_q[n];
  };
  if (r0 < r1 && active) load_token(r0);
  for (int row = r0; row < r1; ++row) {
    const size_t n = row;
    const int t = row % sh.T;
    const QkGroupIn in = next;
    const uint4 du[2] = {next_du[0], next_du[1]};
    const float r = next_r;
    if (row + 1 < r1 && active) load_token(row + 1);
    float x[16], gw[16], dot = 0.0f;
    if (active) {
      group_values<kShift>(in, x);
      float d[16];
      unpack8(du[0], d);
      unpack8(du[1], d + 8);
      float2 cs[8];
      load_rope(rope, t, half, g.i0, cs);
#pragma unroll
      for (int e = 0; e < 16; ++e) {
        // inverse rotation: the gradient of the normalised vector
        const float2 c = cs[e % 8];
        const float nv = e < 8 ? d[e] * c.x + d[e + 8] * c.y : d[e] * c.x - d[e - 8] * c.y;
        x[e] *= r;
        gw[e] = nv * w[e];
        dot += gw[e] * x[e];
        dw[e] += nv * x[e];
      }
    }
    const float2 tot = block_sum2_alternating(g.is_k ? 0.0f : dot, g.is_k ? dot : 0.0f, slots, row & 1);
    if (!active) continue;
    const float mean = g.is_k ? tot.y / kd : tot.x / qd;
    float o[16];
#pragma unroll
    for (int e = 0; e < 16; ++e) o[e] = r * (gw[e] - x[e] * mean);
    __nv_bfloat16* dst = g.is_k ? dk_s : dq;
    *reinterpret_cast<uint4*>(dst + n * ld + g.c[0]) = pack8(o);
    *reinterpret_cast<uint4*>(dst + n * ld + g.c[1]) = pack8(o + 8);
  }
  if (!active) return;
  const int dw_ld = qd + kd;
  float4* dst = reinterpret_cast<float4*>(dw_partial + size_t(blockIdx.x) * dw_ld + g.col0);
#pragma unroll
  for (int p = 0; p < 2; ++p)
#pragma unroll
    for (int e = 0; e < 2; ++e)
      dst[(g.c[p] >> 2) + e] = make_float4(dw[8 * p + 4 * e], dw[8 * p + 4 * e + 1], dw[8 * p + 4 * e + 2],
                                           dw[8 * p + 4 * e + 3]);
}

// Threads of a group block: one per group, whole warps.
int group_threads(const QkvShape& sh) { return ((sh.H + sh.Hkv) * sh.D / 16 + 31) / 32 * 32; }

// One warp per (token, K/V head, k-or-v).
__global__ void shift_backward_kernel(QkvShape sh, const __nv_bfloat16* __restrict__ qkv,
                                      const float* __restrict__ pre_k, const float* __restrict__ pre_v,
                                      const __nv_bfloat16* __restrict__ ds, __nv_bfloat16* __restrict__ dkv,
                                      __nv_bfloat16* __restrict__ dpre_k, __nv_bfloat16* __restrict__ dpre_v) {
  const int N = sh.B * sh.T, qd = sh.H * sh.D, kd = sh.Hkv * sh.D, ld = qd + 2 * kd, Hkv = sh.Hkv, pld = sh.pre_ld;
  const size_t w = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (w >= size_t(N) * Hkv * 2) return;
  const int which = int(w % 2), h = int((w / 2) % Hkv);
  const size_t n = w / (2 * Hkv);
  const int t = int(n % sh.T);
  const float* pre = which ? pre_v : pre_k;
  const float a = sigm(pre[n * pld + h]);
  const bool has_next = t + 1 < sh.T;
  const float a_next = has_next ? sigm(pre[(n + 1) * pld + h]) : 0.0f;
  const int off = qd + which * kd;  // k or v block of qkv
  const int dsoff = which * kd;     // k or v block of ds / dkv
  float da = 0.0f;
  for (int i = lane; i < sh.D; i += 32) {
    const int c = h * sh.D + i;
    const float g = to_f(ds[n * ld + dsoff + c]);
    const float g_next = has_next ? to_f(ds[(n + 1) * ld + dsoff + c]) : 0.0f;
    dkv[n * ld + dsoff + c] = to_bf(a * g + (1.0f - a_next) * g_next);
    const float prev = t > 0 ? to_f(qkv[(n - 1) * ld + off + c]) : 0.0f;
    da += g * (to_f(qkv[n * ld + off + c]) - prev);
  }
  da = warp_sum(da);
  if (lane == 0) (which ? dpre_v : dpre_k)[n * pld + h] = to_bf(da * a * (1.0f - a));
}

void check_heads(const QkvShape& sh, const char* who, bool shift) {
  if (sh.H < 1 || sh.Hkv < 1 || sh.H % sh.Hkv != 0)
    throw std::invalid_argument(std::string(who) + ": the K/V heads (" + std::to_string(sh.Hkv) +
                                ") must divide the " + std::to_string(sh.H) + " query heads");
  if (shift && sh.pre_ld < sh.Hkv)
    throw std::invalid_argument(std::string(who) + ": token-shift pre-activations in rows of " +
                                std::to_string(sh.pre_ld) + " < the " + std::to_string(sh.Hkv) + " K/V heads");
}

}  // namespace

std::vector<float> rope_table(int T, int D, float theta) {
  const int half = D / 2;
  std::vector<float> tab(size_t(T) * half * 2);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < half; ++i) {
      const double ang = double(t) * std::pow(double(theta), -2.0 * i / D);
      tab[(size_t(t) * half + i) * 2] = float(std::cos(ang));
      tab[(size_t(t) * half + i) * 2 + 1] = float(std::sin(ang));
    }
  return tab;
}

void qk_norm_rope_forward(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* qkv, const float* pre_k,
                          const float* pre_v, const __nv_bfloat16* q_w, const __nv_bfloat16* k_w, const float2* rope,
                          __nv_bfloat16* out, float* rstd_q, float* rstd_k) {
  check_heads(sh, "qk_norm_rope_forward", pre_k || pre_v);
  if ((pre_k == nullptr) != (pre_v == nullptr))
    throw std::invalid_argument("qk_norm_rope_forward: token shift needs both pre_k and pre_v (or neither)");
  const int N = sh.B * sh.T;
  if (N == 0) return;
  if (sh.D % 16 == 0 && (sh.H + sh.Hkv) * sh.D / 16 <= kQkMaxGroups) {
    auto* kernel = pre_k ? qk_forward_groups<true> : qk_forward_groups<false>;
    const int G = std::min(N, resident_blocks(kernel, group_threads(sh)));  // one wave: no tail
    kernel<<<G, group_threads(sh), 0, s>>>(sh, qkv, pre_k, pre_v, q_w, k_w, rope, out, rstd_q, rstd_k, ceil_div(N, G));
  } else {
    qk_forward_kernel<<<ceil_div(N, 8), 256, 0, s>>>(sh, qkv, pre_k, pre_v, q_w, k_w, rope, out, rstd_q, rstd_k);
  }
  CUDA_CHECK_LAUNCH();
}

void qk_norm_rope_backward(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                           const float* pre_k, const __nv_bfloat16* q_w, const __nv_bfloat16* k_w, const float2* rope,
                           const float* rstd_q, const float* rstd_k, __nv_bfloat16* dq, __nv_bfloat16* dk_s,
                           float* dw_partial) {
  check_heads(sh, "qk_norm_rope_backward", pre_k);
  const int N = sh.B * sh.T, d = sh.H * sh.D;  // q's width; k's is no larger
  if (d > kQkNormMaxDim)
    throw std::invalid_argument("qk_norm_rope_backward: d_model = " + std::to_string(d) + " > 4096");
  if (N == 0) return;
  const int G = partial_blocks(N);
  if (sh.D % 16 == 0) {  // (H + Hkv) D / 16 <= kQkMaxGroups for d <= kQkNormMaxDim
    auto* kernel = pre_k ? qk_backward_groups<true> : qk_backward_groups<false>;
    kernel<<<G, group_threads(sh), 0, s>>>(sh, dout, qkv, pre_k, q_w, k_w, rope, rstd_q, rstd_k, dq, dk_s, dw_partial,
                                           ceil_div(N, G));
    CUDA_CHECK_LAUNCH();
    return;
  }
  const int threads = ((ceil_div(d / 2, kPpt) + 31) / 32) * 32;
  qk_backward_kernel<<<G, threads, 0, s>>>(sh, dout, qkv, pre_k, q_w, k_w, rope, rstd_q, rstd_k, dq, dk_s,
                                           dw_partial, ceil_div(N, G));
  CUDA_CHECK_LAUNCH();
}

void token_shift_backward(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* qkv, const float* pre_k,
                          const float* pre_v, const __nv_bfloat16* ds, __nv_bfloat16* dkv, __nv_bfloat16* dpre_k,
                          __nv_bfloat16* dpre_v) {
  check_heads(sh, "token_shift_backward", true);
  const size_t warps = size_t(sh.B) * sh.T * sh.Hkv * 2;
  if (warps == 0) return;
  shift_backward_kernel<<<ceil_div(warps, 8), 256, 0, s>>>(sh, qkv, pre_k, pre_v, ds, dkv, dpre_k, dpre_v);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
