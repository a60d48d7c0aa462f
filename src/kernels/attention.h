// CUDA GatedFWA attention (docs/gatedfwa.md sections 2, 4). Host API; kernels in *.cu; the gate scan
// that produces lam is gate.h.
//
// Layouts (as in attention_cpu.h), element (b, t, h, d) of a [B,T,H,D] tensor x lives at
//   x + (b*T + t) * x_row_stride + h*D + d
// so q/k/v (and dq/dk/dv) may be views into a fused [B,T,3,H,D] buffer (row stride 3*H*D).
// Row strides must be multiples of 8 elements and base pointers 16-byte aligned (16-byte copies).
//   lam, dlam: [B,T,H] fp32 (inclusive prefix sums of log-gates; gatedfwa only)
//   lse:       [B,H,T] fp32, natural log
// Head dims 64 and 128; any B, T, H >= 1 and W >= 1 (full mode ignores W).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/attention_mode.h"

namespace gfwa::cuda {

struct AttnParams {
  const __nv_bfloat16 *q, *k, *v;
  int64_t q_row_stride, k_row_stride, v_row_stride, o_row_stride;
  const float* lam;  // gatedfwa only; may be null otherwise
  __nv_bfloat16* o;
  float* lse;
  int B, T, H, D, window;
  AttnMode mode;
};

// The forward's fields (its outputs o, lse are read here) plus the gradients.
struct AttnBwdParams : AttnParams {
  const __nv_bfloat16* dout;
  int64_t dout_row_stride;
  __nv_bfloat16 *dq, *dk, *dv;  // overwritten
  int64_t dq_row_stride, dk_row_stride, dv_row_stride;
  float* dlam;       // [B,T,H], overwritten; gatedfwa only
  float* workspace;  // attention_bwd_workspace_bytes(*this) bytes, 16-byte aligned
};

// The layout every caller uses: q and k the first two thirds of fused [B,T,3,H,D] rows (row stride
// 3*H*D), v with the same stride (the third third of those rows, or of another fused buffer), o
// packed [B,T,H,D]. lam: gatedfwa only (nullptr otherwise).
inline AttnParams attn_params(const __nv_bfloat16* qk, const __nv_bfloat16* v, const float* lam, __nv_bfloat16* o,
                              float* lse, int B, int T, int H, int D, int window, AttnMode mode) {
  const int64_t hd = int64_t(H) * D;
  AttnParams p{};
  p.q = qk;
  p.k = qk + hd;
  p.v = v;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = 3 * hd;
  p.o_row_stride = hd;
  p.lam = lam;
  p.o = o;
  p.lse = lse;
  p.B = B;
  p.T = T;
  p.H = H;
  p.D = D;
  p.window = window;
  p.mode = mode;
  return p;
}

// The backward of `fwd`: dout packed [B,T,H,D]; dq|dk|dv the thirds of fused rows of dqkv;
// dlam gatedfwa only; workspace of attention_bwd_workspace_bytes(fwd) bytes.
inline AttnBwdParams attn_bwd_params(const AttnParams& fwd, const __nv_bfloat16* dout, __nv_bfloat16* dqkv,
                                     float* dlam, float* workspace) {
  const int64_t hd = int64_t(fwd.H) * fwd.D;
  AttnBwdParams p{};
  static_cast<AttnParams&>(p) = fwd;
  p.dout = dout;
  p.dout_row_stride = hd;
  p.dq = dqkv;
  p.dk = dqkv + hd;
  p.dv = dqkv + 2 * hd;
  p.dq_row_stride = p.dk_row_stride = p.dv_row_stride = 3 * hd;
  p.dlam = dlam;
  p.workspace = workspace;
  return p;
}

size_t attention_bwd_workspace_bytes(const AttnParams& p);
void attention_forward(const AttnParams& p, cudaStream_t stream);
// Deterministic: no atomics; every output element is written by exactly one thread.
void attention_backward(const AttnBwdParams& p, cudaStream_t stream);

}  // namespace gfwa::cuda
