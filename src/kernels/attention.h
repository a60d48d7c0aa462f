// CUDA GatedFWA attention and gate scan (gatedfwa.md sections 2, 4). Host API; kernels in *.cu.
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

size_t attention_bwd_workspace_bytes(const AttnParams& p);
void attention_forward(const AttnParams& p, cudaStream_t stream);
// Deterministic: no atomics; every output element is written by exactly one thread.
void attention_backward(const AttnBwdParams& p, cudaStream_t stream);

// hg, pre: [B,T,H] fp32 gate pre-activations; lam = inclusive prefix sum along T of
// logsigmoid(beta*hg)/(beta+1e-3), beta = 1 + ELU(pre). One pass, double accumulation.
void gate_forward(const float* hg, const float* pre, float* lam, int B, int T, int H, cudaStream_t stream);
// dlam -> dhg, dpre (overwritten): reverse inclusive scan and the chain rule of gatedfwa.md section 4.
void gate_backward(const float* hg, const float* pre, const float* dlam, float* dhg, float* dpre, int B, int T,
                   int H, cudaStream_t stream);

}  // namespace gfwa::cuda
