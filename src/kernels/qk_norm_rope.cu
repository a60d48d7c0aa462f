#include "kernels/qk_norm_rope.cuh"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/reduce.cuh"

namespace gfwa::cuda {
namespace {

constexpr int kPpt = 2;  // (c0, c0 + D/2) pairs per thread in the backward: d <= 2 * 1024 * kPpt

__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + __expf(-x)); }

// Value of the (shifted) k at channel c of token n (position t): a*k_t + (1-a)*k_{t-1}.
__device__ __forceinline__ float shifted(const __nv_bfloat16* x, size_t n, int t, int c, int ld, float a) {
  const float cur = to_f(x[n * ld + c]);
  if (a < 0.0f) return cur;  // no shift
  const float prev = t > 0 ? to_f(x[(n - 1) * ld + c]) : 0.0f;
  return a * cur + (1.0f - a) * prev;
}

// One warp per token.
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
      const float a = pre_k ? sigm(pre_k[n * sh.Hkv + c / sh.D]) : -1.0f;
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
    const float a = pre_k ? sigm(pre_k[n * sh.Hkv + h]) : -1.0f;
    const float k0 = shifted(kbase, n, t, c0, ld, a) * rk * to_f(k_w[c0]);
    const float k1 = shifted(kbase, n, t, c1, ld, a) * rk * to_f(k_w[c1]);
    o[qd + c0] = to_bf(k0 * cs.x - k1 * cs.y);
    o[qd + c1] = to_bf(k1 * cs.x + k0 * cs.y);
  }
  if (pre_v)
    for (int c = lane; c < kd; c += 32)
      o[qd + kd + c] = to_bf(shifted(qkv + qd + kd, n, t, c, ld, sigm(pre_v[n * sh.Hkv + c / sh.D])));
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
      const float a = pre_k ? sigm(pre_k[n * sh.Hkv + c0 / sh.D]) : -1.0f;
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

// The common case (D % 16 == 0, H*D <= 1024): one warp per token. The token's rotation-pair groups
// (8 channels of a head's first half and the 8 they pair with), q's then k's, are dealt to the lanes
// together, K per lane (96 groups = 3 per lane at d = 768 without GQA), read and written with 16-byte
// accesses: a token costs one trip to memory and one paired warp reduction, with no block barrier.
// A group keeps its normalised input in registers and its raw output gradient packed; the store pass
// recomputes the weighted gradient from the latter. Weight-gradient partials stay in registers and are
// merged across warps in shared memory, in warp order, at the end.
constexpr int kQkWarps = 8;

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

// The gradient of a group's normalised vector: dout rotated back (n), then times the weight (gw).
__device__ __forceinline__ void qk_group_grad(const uint4 (&du)[2], const float2* cs, const __nv_bfloat16* wgt,
                                              const QkGroup& g, float (&n)[16], float (&gw)[16]) {
  const __nv_bfloat16* d0 = reinterpret_cast<const __nv_bfloat16*>(&du[0]);
  const __nv_bfloat16* d1 = reinterpret_cast<const __nv_bfloat16*>(&du[1]);
  const uint4 w0u = *reinterpret_cast<const uint4*>(wgt + g.c[0]);
  const uint4 w1u = *reinterpret_cast<const uint4*>(wgt + g.c[1]);
  const __nv_bfloat16* w0 = reinterpret_cast<const __nv_bfloat16*>(&w0u);
  const __nv_bfloat16* w1 = reinterpret_cast<const __nv_bfloat16*>(&w1u);
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float2 r = cs[e];
    const float a = to_f(d0[e]), b = to_f(d1[e]);
    n[e] = a * r.x + b * r.y;
    n[8 + e] = b * r.x - a * r.y;
    gw[e] = n[e] * to_f(w0[e]);
    gw[8 + e] = n[8 + e] * to_f(w1[e]);
  }
}

template <int K>
__global__ void __launch_bounds__(kQkWarps * 32) qk_backward_warp(
    QkvShape sh, const __nv_bfloat16* dout,  // may alias dq / dk_s
    const __nv_bfloat16* __restrict__ qkv, const float* __restrict__ pre_k, const __nv_bfloat16* __restrict__ q_w,
    const __nv_bfloat16* __restrict__ k_w, const float2* __restrict__ rope, const float* __restrict__ rstd_q,
    const float* __restrict__ rstd_k, __nv_bfloat16* dq, __nv_bfloat16* dk_s, float* __restrict__ dw_partial,
    int rows_per_block) {
  extern __shared__ float red[];  // [kQkWarps][qd + kd]
  const int N = sh.B * sh.T, qd = sh.H * sh.D, kd = sh.Hkv * sh.D, half = sh.D / 2, ld = qd + 2 * kd;
  const int dw_ld = qd + kd, ngroups = dw_ld / 16;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float dw[K][16];
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int e = 0; e < 16; ++e) dw[k][e] = 0.0f;
  const int r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  for (int row = r0 + warp; row < r1; row += kQkWarps) {
    const size_t n = row;
    const int t = row % sh.T;
    const float rq = rstd_q[n], rk = rstd_k[n];
    const float2* cs_t = rope + size_t(t) * half;
    uint4 du[K][2];
    float xs[K][16], dotq = 0.0f, dotk = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {  // all loads of the token first
      const int gi = lane + 32 * k;
      if (gi >= ngroups) continue;
      const QkGroup g = qk_group(sh, gi);
      const float a = g.is_k && pre_k ? sigm(pre_k[n * sh.Hkv + g.h]) : -1.0f;
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        const size_t off = n * ld + g.col0 + g.c[p];
        du[k][p] = *reinterpret_cast<const uint4*>(dout + off);
        const uint4 xu = *reinterpret_cast<const uint4*>(qkv + off);
        const __nv_bfloat16* xh = reinterpret_cast<const __nv_bfloat16*>(&xu);
#pragma unroll
        for (int e = 0; e < 8; ++e) xs[k][p * 8 + e] = to_f(xh[e]);
        if (a >= 0.0f) {  // recompute the shifted k
          uint4 pu = make_uint4(0, 0, 0, 0);
          if (t > 0) pu = *reinterpret_cast<const uint4*>(qkv + off - ld);
          const __nv_bfloat16* ph = reinterpret_cast<const __nv_bfloat16*>(&pu);
#pragma unroll
          for (int e = 0; e < 8; ++e) xs[k][p * 8 + e] = a * xs[k][p * 8 + e] + (1.0f - a) * to_f(ph[e]);
        }
      }
    }
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int gi = lane + 32 * k;
      if (gi >= ngroups) continue;
      const QkGroup g = qk_group(sh, gi);
      const float r = g.is_k ? rk : rq;
      float nv[16], gw[16], dot = 0.0f;
      qk_group_grad(du[k], cs_t + g.i0, g.is_k ? k_w : q_w, g, nv, gw);
#pragma unroll
      for (int e = 0; e < 16; ++e) {
        xs[k][e] *= r;
        dot += gw[e] * xs[k][e];
        dw[k][e] += nv[e] * xs[k][e];
      }
      if (g.is_k)
        dotk += dot;
      else
        dotq += dot;
    }
    dotq = warp_sum(dotq) / qd;
    dotk = warp_sum(dotk) / kd;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int gi = lane + 32 * k;
      if (gi >= ngroups) continue;
      const QkGroup g = qk_group(sh, gi);
      const float r = g.is_k ? rk : rq, dot = g.is_k ? dotk : dotq;
      float nv[16], gw[16];
      qk_group_grad(du[k], cs_t + g.i0, g.is_k ? k_w : q_w, g, nv, gw);
      __nv_bfloat16* dst = g.is_k ? dk_s : dq;
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        uint4 out;
        __nv_bfloat16* oh = reinterpret_cast<__nv_bfloat16*>(&out);
#pragma unroll
        for (int e = 0; e < 8; ++e) oh[e] = to_bf(r * (gw[p * 8 + e] - xs[k][p * 8 + e] * dot));
        *reinterpret_cast<uint4*>(dst + n * ld + g.c[p]) = out;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int gi = lane + 32 * k;
    if (gi >= ngroups) continue;
    const QkGroup g = qk_group(sh, gi);
#pragma unroll
    for (int p = 0; p < 2; ++p)
#pragma unroll
      for (int e = 0; e < 8; ++e) red[warp * dw_ld + g.col0 + g.c[p] + e] = dw[k][p * 8 + e];
  }
  __syncthreads();
  for (int c = threadIdx.x; c < dw_ld; c += blockDim.x) {
    float acc = 0.0f;
    for (int w = 0; w < kQkWarps; ++w) acc += red[w * dw_ld + c];
    dw_partial[size_t(blockIdx.x) * dw_ld + c] = acc;
  }
}

template <int K>
void launch_qk_backward_warp(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                             const float* pre_k, const __nv_bfloat16* q_w, const __nv_bfloat16* k_w,
                             const float2* rope, const float* rstd_q, const float* rstd_k, __nv_bfloat16* dq,
                             __nv_bfloat16* dk_s, float* dw_partial, int N, int G) {
  const size_t smem = size_t(kQkWarps) * (sh.H + sh.Hkv) * sh.D * sizeof(float);
  if (smem > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(qk_backward_warp<K>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  qk_backward_warp<K><<<G, kQkWarps * 32, smem, s>>>(sh, dout, qkv, pre_k, q_w, k_w, rope, rstd_q, rstd_k, dq, dk_s,
                                                      dw_partial, ceil_div(N, G));
}

// One warp per (token, K/V head, k-or-v).
__global__ void shift_backward_kernel(QkvShape sh, const __nv_bfloat16* __restrict__ qkv,
                                      const float* __restrict__ pre_k, const float* __restrict__ pre_v,
                                      const __nv_bfloat16* __restrict__ ds, __nv_bfloat16* __restrict__ dkv,
                                      __nv_bfloat16* __restrict__ dpre_k, __nv_bfloat16* __restrict__ dpre_v) {
  const int N = sh.B * sh.T, qd = sh.H * sh.D, kd = sh.Hkv * sh.D, ld = qd + 2 * kd, Hkv = sh.Hkv;
  const size_t w = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (w >= size_t(N) * Hkv * 2) return;
  const int which = int(w % 2), h = int((w / 2) % Hkv);
  const size_t n = w / (2 * Hkv);
  const int t = int(n % sh.T);
  const float* pre = which ? pre_v : pre_k;
  const float a = sigm(pre[n * Hkv + h]);
  const bool has_next = t + 1 < sh.T;
  const float a_next = has_next ? sigm(pre[(n + 1) * Hkv + h]) : 0.0f;
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
  if (lane == 0) (which ? dpre_v : dpre_k)[n * Hkv + h] = to_bf(da * a * (1.0f - a));
}

void check_heads(const QkvShape& sh, const char* who) {
  if (sh.H < 1 || sh.Hkv < 1 || sh.H % sh.Hkv != 0)
    throw std::invalid_argument(std::string(who) + ": the K/V heads (" + std::to_string(sh.Hkv) +
                                ") must divide the " + std::to_string(sh.H) + " query heads");
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
  check_heads(sh, "qk_norm_rope_forward");
  const int N = sh.B * sh.T;
  if (N == 0) return;
  qk_forward_kernel<<<ceil_div(N, 8), 256, 0, s>>>(sh, qkv, pre_k, pre_v, q_w, k_w, rope, out, rstd_q, rstd_k);
  CUDA_CHECK_LAUNCH();
}

void qk_norm_rope_backward(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                           const float* pre_k, const __nv_bfloat16* q_w, const __nv_bfloat16* k_w, const float2* rope,
                           const float* rstd_q, const float* rstd_k, __nv_bfloat16* dq, __nv_bfloat16* dk_s,
                           float* dw_partial) {
  check_heads(sh, "qk_norm_rope_backward");
  const int N = sh.B * sh.T, d = sh.H * sh.D;  // q's width; k's is no larger
  if (d > kQkNormMaxDim)
    throw std::invalid_argument("qk_norm_rope_backward: d_model = " + std::to_string(d) + " > 4096");
  if (N == 0) return;
  const int G = partial_blocks(N);
  if (sh.D % 16 == 0 && d <= 1024) {
    switch (ceil_div((sh.H + sh.Hkv) * sh.D / 16, 32)) {  // q's and k's groups of 16 channels over 32 lanes
      case 1:
        launch_qk_backward_warp<1>(s, sh, dout, qkv, pre_k, q_w, k_w, rope, rstd_q, rstd_k, dq, dk_s, dw_partial, N, G);
        break;
      case 2:
        launch_qk_backward_warp<2>(s, sh, dout, qkv, pre_k, q_w, k_w, rope, rstd_q, rstd_k, dq, dk_s, dw_partial, N, G);
        break;
      case 3:
        launch_qk_backward_warp<3>(s, sh, dout, qkv, pre_k, q_w, k_w, rope, rstd_q, rstd_k, dq, dk_s, dw_partial, N, G);
        break;
      default:
        launch_qk_backward_warp<4>(s, sh, dout, qkv, pre_k, q_w, k_w, rope, rstd_q, rstd_k, dq, dk_s, dw_partial, N, G);
        break;
    }
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
  check_heads(sh, "token_shift_backward");
  const size_t warps = size_t(sh.B) * sh.T * sh.Hkv * 2;
  if (warps == 0) return;
  shift_backward_kernel<<<ceil_div(warps, 8), 256, 0, s>>>(sh, qkv, pre_k, pre_v, ds, dkv, dpre_k, dpre_v);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
