// Decode-step kernels (decode.cuh); the fp32 twin is decode_cpu.cpp, the numerics follow the
// training path (qk_norm_rope.cu for token shift, QK-norm and RoPE; gate.cu for logf).
#include "kernels/decode.cuh"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/cuda_check.h"
#include "kernels/device_util.cuh"
#include "kernels/gate_math.cuh"

namespace gfwa::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kAppendThreads = 256;
constexpr int kAttnThreads = kDecodeChunk;  // one key per thread for the scores
constexpr int kArgmaxThreads = 256;

// The token-shift gate exactly as the training forward computes it (qk_norm_rope.cu).
__device__ __forceinline__ float shift_gate(float x) { return 1.0f / (1.0f + __expf(-x)); }

// One CTA per sequence: the new token's k and v (shifted), QK-norm over the whole d, RoPE at the
// sequence's position, the gate; the result goes into ring entry pos % cap.
__global__ void __launch_bounds__(kAppendThreads)
    append_kernel(DecodeDims dm, DecodeCacheDev c, const int64_t* __restrict__ pos, const bf16* __restrict__ qkv,
                  const float* __restrict__ pre_k, const float* __restrict__ pre_v, const float* __restrict__ hg,
                  const float* __restrict__ pre, const bf16* __restrict__ q_w, const bf16* __restrict__ k_w,
                  bf16* __restrict__ q_out) {
  __shared__ float scratch[32];
  const int b = blockIdx.x, tid = threadIdx.x, H = dm.H, D = dm.D, d = H * D, dkv = dm.Hkv * D, half = D / 2;
  const int64_t p = pos[b];
  const int e = int(p % dm.cap);
  const bf16* row = qkv + size_t(b) * (d + 2 * dkv);
  bf16* prev_k = dm.token_shift ? c.shift_k + size_t(b) * dkv : nullptr;
  bf16* prev_v = dm.token_shift ? c.shift_v + size_t(b) * dkv : nullptr;
  // Channel ch of the (shifted) k or v; the previous token is zero at position 0.
  auto shifted = [&](const float* pre_a, const bf16* prev, int off, int ch) {
    const float cur = to_f(row[off + ch]);
    if (!dm.token_shift) return cur;
    const float a = shift_gate(pre_a[size_t(b) * dm.Hkv + ch / D]);
    const float before = p > 0 ? to_f(prev[ch]) : 0.0f;
    return a * cur + (1.0f - a) * before;
  };
  // k's channels and rotation pairs are a prefix of q's (dkv <= d): one loop serves both.
  float ssq = 0.0f, ssk = 0.0f;
  for (int ch = tid; ch < d; ch += blockDim.x) {
    const float qv = to_f(row[ch]);
    ssq += qv * qv;
    if (ch < dkv) {
      const float kv = shifted(pre_k, prev_k, d, ch);
      ssk += kv * kv;
    }
  }
  // block_sum's barriers also order every read of the shift state above before its update below.
  const float rq = rsqrtf(block_sum(ssq, scratch) / d + dm.eps);
  const float rk = rsqrtf(block_sum(ssk, scratch) / dkv + dm.eps);
  for (int pi = tid; pi < d / 2; pi += blockDim.x) {
    const int h = pi / half, i = pi % half, c0 = h * D + i, c1 = c0 + half;
    // The angle in double, as rope_table: exact at any position.
    const double ang = double(p) * pow(double(dm.theta), -2.0 * i / D);
    const float cs = float(cos(ang)), sn = float(sin(ang));
    const float q0 = to_f(row[c0]) * rq * to_f(q_w[c0]), q1 = to_f(row[c1]) * rq * to_f(q_w[c1]);
    q_out[size_t(b) * d + c0] = to_bf(q0 * cs - q1 * sn);
    q_out[size_t(b) * d + c1] = to_bf(q1 * cs + q0 * sn);
    if (pi >= dkv / 2) continue;  // h is a K/V head below
    const float k0 = shifted(pre_k, prev_k, d, c0) * rk * to_f(k_w[c0]);
    const float k1 = shifted(pre_k, prev_k, d, c1) * rk * to_f(k_w[c1]);
    const size_t at = ((size_t(b) * dm.Hkv + h) * dm.cap + e) * D + i;
    c.k[at] = to_bf(k0 * cs - k1 * sn);
    c.k[at + half] = to_bf(k1 * cs + k0 * sn);
    c.v[at] = to_bf(shifted(pre_v, prev_v, d + dkv, c0));
    c.v[at + half] = to_bf(shifted(pre_v, prev_v, d + dkv, c1));
    if (dm.token_shift) {  // this thread alone read these channels of the state in this loop
      prev_k[c0] = row[d + c0];
      prev_k[c1] = row[d + c1];
      prev_v[c0] = row[d + dkv + c0];
      prev_v[c1] = row[d + dkv + c1];
    }
  }
  if (dm.mode != AttnMode::gatedfwa) return;
  const bool rebase = p > 0 && p % dm.cap == 0;
  if (rebase)  // the base moves to the newest token: every entry minus lam_now
    for (int idx = tid; idx < H * dm.cap; idx += blockDim.x) {
      const int h = idx / dm.cap;
      float& l = c.lam[(size_t(b) * H + h) * dm.cap + idx % dm.cap];
      l = float(double(l) - c.lam_now[size_t(b) * H + h]);
    }
  __syncthreads();
  if (tid < H) {
    const size_t bh = size_t(b) * H + tid;
    const double now = (p == 0 || rebase ? 0.0 : c.lam_now[bh]) + double(logf_of(hg[bh], pre[bh]));
    c.lam_now[bh] = now;
    c.lam[bh * dm.cap + e] = float(now);
  }
}

// One CTA per (chunk s, query head h, sequence b): the softmax partial (max m, sum l, unnormalised
// output) of the chunk's keys, positions first .. first + cnt - 1, of K/V head h / (H/Hkv).
template <int D>
__global__ void __launch_bounds__(kAttnThreads)
    attention_kernel(DecodeDims dm, DecodeCacheDev c, const int64_t* __restrict__ pos, const bf16* __restrict__ q,
                     float* __restrict__ ws) {
  constexpr int G = kAttnThreads / D;  // thread groups of D summing interleaved keys
  __shared__ float qs[D], ps[kDecodeChunk], scratch[32], part[G][D];
  const int s = blockIdx.x, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x, S = gridDim.x;
  const int64_t p = pos[b];
  const int64_t n = p + 1 < dm.cap ? p + 1 : dm.cap;
  const int64_t first = p - n + 1 + int64_t(s) * kDecodeChunk;
  const int64_t rest = p + 1 - first;
  const int cnt = rest <= 0 ? 0 : int(rest < kDecodeChunk ? rest : kDecodeChunk);
  float* out = ws + ((size_t(b) * dm.H + h) * S + s) * (D + 2);
  if (cnt == 0) {  // past the cache's fill: an empty partial
    if (tid < D) out[2 + tid] = 0.0f;
    if (tid == 0) {
      out[0] = -INFINITY;
      out[1] = 0.0f;
    }
    return;
  }
  if (tid < D) qs[tid] = to_f(q[(size_t(b) * dm.H + h) * D + tid]);
  __syncthreads();
  const size_t row = (size_t(b) * dm.H + h) * dm.cap;                     // lam (per query head)
  const size_t kv_row = (size_t(b) * dm.Hkv + h / (dm.H / dm.Hkv)) * dm.cap;  // k, v
  const bool gated = dm.mode == AttnMode::gatedfwa;
  float sc = -INFINITY;
  if (tid < cnt) {
    const size_t e = size_t((first + tid) % dm.cap);
    const uint4* kp = reinterpret_cast<const uint4*>(c.k + (kv_row + e) * D);
    float dot = 0.0f;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      const uint4 u = kp[j];
      const bf16* kb = reinterpret_cast<const bf16*>(&u);
#pragma unroll
      for (int x = 0; x < 8; ++x) dot += qs[j * 8 + x] * to_f(kb[x]);
    }
    sc = dot * rsqrtf(float(D)) + (gated ? float(c.lam_now[size_t(b) * dm.H + h] - double(c.lam[row + e])) : 0.0f);
  }
  const float m = block_max(sc, scratch);
  const float pr = tid < cnt ? expf(sc - m) : 0.0f;
  ps[tid] = pr;
  const float l = block_sum(pr, scratch);  // its barriers publish ps
  const int g = tid / D, dd = tid % D;
  float acc = 0.0f;
  for (int j = g; j < cnt; j += G) acc += ps[j] * to_f(c.v[(kv_row + size_t((first + j) % dm.cap)) * D + dd]);
  part[g][dd] = acc;
  __syncthreads();
  if (tid < D) {
    float o = 0.0f;
#pragma unroll
    for (int x = 0; x < G; ++x) o += part[x][tid];
    out[2 + tid] = o;
  }
  if (tid == 0) {
    out[0] = m;
    out[1] = l;
  }
}

// One CTA of D threads per (head, sequence): merges the S chunk partials.
__global__ void combine_kernel(const float* __restrict__ ws, int S, int H, int D, bf16* __restrict__ o) {
  const int h = blockIdx.x, b = blockIdx.y, t = threadIdx.x;
  const float* part = ws + (size_t(b) * H + h) * S * (D + 2);
  float M = -INFINITY;
  for (int s = 0; s < S; ++s) M = fmaxf(M, part[size_t(s) * (D + 2)]);
  float L = 0.0f, acc = 0.0f;
  for (int s = 0; s < S; ++s) {
    const float* ps = part + size_t(s) * (D + 2);
    if (ps[0] == -INFINITY) continue;
    const float w = expf(ps[0] - M);
    L += w * ps[1];
    acc += w * ps[2 + t];
  }
  o[(size_t(b) * H + h) * D + t] = to_bf(acc / L);
}

// One CTA per prefilled position t (the last min(T, cap)).
__global__ void fill_kernel(DecodeDims dm, DecodeCacheDev c, int b, int T, int t0, const bf16* __restrict__ k,
                            const bf16* __restrict__ v, const bf16* __restrict__ raw_k,
                            const bf16* __restrict__ raw_v, int64_t ld, const float* __restrict__ lam) {
  const int t = t0 + blockIdx.x, H = dm.H, D = dm.D, dkv = dm.Hkv * D, e = t % dm.cap;
  for (int ch = threadIdx.x; ch < dkv; ch += blockDim.x) {
    const size_t at = ((size_t(b) * dm.Hkv + ch / D) * dm.cap + e) * D + ch % D;
    c.k[at] = k[size_t(t) * ld + ch];
    c.v[at] = v[size_t(t) * ld + ch];
    if (dm.token_shift && t == T - 1) {
      c.shift_k[size_t(b) * dkv + ch] = raw_k[size_t(t) * ld + ch];
      c.shift_v[size_t(b) * dkv + ch] = raw_v[size_t(t) * ld + ch];
    }
  }
  if (dm.mode == AttnMode::gatedfwa && int(threadIdx.x) < H) {
    const int h = threadIdx.x;
    const double last = lam[size_t(T - 1) * H + h];
    c.lam[(size_t(b) * H + h) * dm.cap + e] = float(double(lam[size_t(t) * H + h]) - last);
    if (t == T - 1) c.lam_now[size_t(b) * H + h] = 0.0;
  }
}

__global__ void advance_kernel(int64_t* pos, int B) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < B) ++pos[b];
}

__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_kernel(const float* __restrict__ logits, int V, int limit, int32_t* __restrict__ ids) {
  __shared__ float best_v[kArgmaxThreads];
  __shared__ int best_i[kArgmaxThreads];
  const float* row = logits + size_t(blockIdx.x) * V;
  float bv = -INFINITY;
  int bi = limit;
  for (int i = threadIdx.x; i < limit; i += blockDim.x)
    if (row[i] > bv || bi == limit) {  // increasing i: a tie keeps the earlier id
      bv = row[i];
      bi = i;
    }
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int off = blockDim.x / 2; off > 0; off >>= 1) {
    if (int(threadIdx.x) < off) {
      const float ov = best_v[threadIdx.x + off];
      const int oi = best_i[threadIdx.x + off];
      if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x])) {
        best_v[threadIdx.x] = ov;
        best_i[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) ids[blockIdx.x] = best_i[0];
}

int chunks(const DecodeDims& dm) { return ceil_div(dm.cap, kDecodeChunk); }

}  // namespace

void check_decode_dims(const DecodeDims& d) {
  if (!attention_kernel_mode(d.mode))
    throw std::invalid_argument(std::string("decode: mode ") + attn_mode_name(d.mode) + " has no decode path");
  if (d.B < 1 || d.H < 1 || d.cap < 1 || !cuda_attention_head_dim_supported(d.D) || d.Hkv < 1 || d.H % d.Hkv != 0)
    throw std::invalid_argument("decode: unsupported shape B=" + std::to_string(d.B) + " H=" + std::to_string(d.H) +
                                " Hkv=" + std::to_string(d.Hkv) + " D=" + std::to_string(d.D) + " cache=" +
                                std::to_string(d.cap) + " (head dim 64 or 128, Hkv dividing H)");
}

void decode_append(cudaStream_t s, const DecodeDims& dims, const DecodeCacheDev& c, const int64_t* pos,
                   const bf16* qkv, const float* pre_k, const float* pre_v, const float* hg, const float* pre,
                   const bf16* q_norm_w, const bf16* k_norm_w, bf16* q) {
  check_decode_dims(dims);
  append_kernel<<<dims.B, kAppendThreads, 0, s>>>(dims, c, pos, qkv, pre_k, pre_v, hg, pre, q_norm_w, k_norm_w, q);
  CUDA_CHECK_LAUNCH();
}

size_t decode_attention_workspace_floats(const DecodeDims& dims) {
  return size_t(dims.B) * dims.H * chunks(dims) * (dims.D + 2);
}

void decode_attention(cudaStream_t s, const DecodeDims& dims, const DecodeCacheDev& c, const int64_t* pos,
                      const bf16* q, bf16* o, float* workspace) {
  check_decode_dims(dims);
  const dim3 grid(chunks(dims), dims.H, dims.B);
  if (dims.D == 64)
    attention_kernel<64><<<grid, kAttnThreads, 0, s>>>(dims, c, pos, q, workspace);
  else
    attention_kernel<128><<<grid, kAttnThreads, 0, s>>>(dims, c, pos, q, workspace);
  CUDA_CHECK_LAUNCH();
  combine_kernel<<<dim3(dims.H, dims.B), dims.D, 0, s>>>(workspace, chunks(dims), dims.H, dims.D, o);
  CUDA_CHECK_LAUNCH();
}

void decode_fill(cudaStream_t s, const DecodeDims& dims, const DecodeCacheDev& c, int b, int T, const bf16* k,
                 const bf16* v, const bf16* raw_k, const bf16* raw_v, int64_t row_stride, const float* lam) {
  check_decode_dims(dims);
  if (b < 0 || b >= dims.B || T < 1)
    throw std::invalid_argument("decode_fill: slot " + std::to_string(b) + " of " + std::to_string(dims.B) +
                                ", T " + std::to_string(T));
  const int n = T < dims.cap ? T : dims.cap;
  fill_kernel<<<n, 256, 0, s>>>(dims, c, b, T, T - n, k, v, raw_k, raw_v, row_stride, lam);
  CUDA_CHECK_LAUNCH();
}

void decode_advance(cudaStream_t s, int64_t* pos, int B) {
  advance_kernel<<<ceil_div(B, 256), 256, 0, s>>>(pos, B);
  CUDA_CHECK_LAUNCH();
}

void argmax_rows(cudaStream_t s, const float* logits, int B, int V, int limit, int32_t* ids) {
  if (limit < 1 || limit > V)
    throw std::invalid_argument("argmax_rows: limit " + std::to_string(limit) + " outside [1, " +
                                std::to_string(V) + "]");
  argmax_kernel<<<B, kArgmaxThreads, 0, s>>>(logits, V, limit, ids);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gfwa::cuda
