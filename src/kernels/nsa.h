// CUDA NSA attention core (docs/nsa.md): the compressed and selected branches and the block selection are
// the kernels of nsa_{compress,select}.cu; the sliding branch is attention.h (swa or gatedfwa); nsa_mix.cu
// gates and sums. CPU twin: nsa_cpu.h, whose comment defines the math, the selection and the layouts; the
// device tensors have the same layouts, bf16 where the CPU has F unless marked fp32:
//   q [B,T,H,D], k, v [B,T,Hkv,D], o [B,T,H,D]: element (b,t,h,d) at x + (b*T + t)*row_stride + h*D + d
//   (row strides multiples of 8 elements, base pointers 16-byte aligned); lam, g_*, dlam, dg_*: [B,T,H] fp32.
// Built for head dims 64 and 128, blocks of kNsaBlock tokens and top_k <= kNsaMaxTopK (nsa_shape.h); any B, T >= 1,
// any Hkv dividing H, any window >= 1. Deterministic: no floating-point atomics, fixed summation orders.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/attention_mode.h"
#include "kernels/nsa_layout.h"
#include "kernels/nsa_shape.h"

namespace gfwa::cuda {

// The forward's intermediates, which the backward reads; nsa_layout.h places them in one buffer of
// nsa_saved_bytes(s) bytes, and nsa_saved_layout turns its offsets into pointers.
struct NsaSaved {
  __nv_bfloat16 *k_cmp, *v_cmp;          // [B, T/64, Hkv, D]   block means
  __nv_bfloat16 *o_cmp, *o_sel, *o_win;  // [B, T, H, D]        branch outputs
  float *lse_cmp, *lse_sel;              // [B, T, H]
  float* lse_win;                        // [B, H, T]           attention.h's layout
  int32_t* idx;                          // [B, T, Hkv, top_k]  selected blocks, ascending, -1 after the last
};
NsaSaved nsa_saved_layout(const NsaShape& s, void* base);  // base: 256-byte aligned, nsa_saved_bytes(s) bytes

struct NsaParams {
  NsaShape s;
  AttnMode sliding;  // swa or gatedfwa
  const __nv_bfloat16 *q, *k, *v;
  int64_t q_row_stride, k_row_stride, v_row_stride;
  const float* lam;                    // gatedfwa only
  const float *g_cmp, *g_sel, *g_win;  // gate values (sigmoid already applied)
  __nv_bfloat16* o;
  int64_t o_row_stride;
  NsaSaved saved;  // written by the forward, read by the backward
};

struct NsaBwdParams : NsaParams {
  const __nv_bfloat16* dout;
  int64_t dout_row_stride;
  __nv_bfloat16 *dq, *dk, *dv;  // overwritten
  int64_t dq_row_stride, dk_row_stride, dv_row_stride;
  float* dlam;                        // gatedfwa only; overwritten
  float *dg_cmp, *dg_sel, *dg_win;    // overwritten
  NsaSplit split;
  void* workspace;  // nsa_bwd_workspace_bytes(s, split) bytes (nsa_layout.h); 256-byte aligned
};

// Throw std::invalid_argument naming the field and value for a shape or pointer the kernels do not take.
// The forward needs no workspace: the sliding branch's attention reads the K/V heads of each group itself.
void nsa_forward(const NsaParams& p, cudaStream_t stream);
void nsa_backward(const NsaBwdParams& p, cudaStream_t stream);

}  // namespace gfwa::cuda
