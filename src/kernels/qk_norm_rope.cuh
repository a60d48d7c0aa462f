// The attention input path after the fused q|k|v projection, on the GPU (twin of the CPU model's
// token shift, QK-norm and RoPE): optional data-dependent token shift of k and v, RMSNorm over the
// whole projected q and k (learnable weight), then half-split (NeoX/Llama) RoPE per head.
// q has H heads of D (width dq = H*D), k and v Hkv heads (width dkv = Hkv*D; grouped-query attention);
// every [N, ...] row below has stride ld = dq + 2*dkv.
//   qkv  [N, ld]  raw projections q | k | v (N = B*T, token-major, heads of D inside each part)
//   out  [N, ld]  q_r | k_r | v_s   (v_s is written only with token shift; otherwise attention
//                 reads v straight from qkv)
//   pre_k, pre_v [N, Hkv] fp32 in rows of QkvShape::pre_ld (columns of the packed projection output):
//                token-shift pre-activations x . ws (a = sigmoid(pre)); both null = off (one alone: invalid_argument).
//   rope [T, D/2] float2 (cos, sin) of t * theta^(-2i/D), from rope_table.
#pragma once
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace gfwa::cuda {

struct QkvShape {
  int B, T, H, D;
  float eps;
  int Hkv;  // K/V heads, divides H; std::invalid_argument otherwise
  int pre_ld = 0;  // row stride of pre_k, pre_v and their gradients; >= Hkv with token shift (else unread)
};

std::vector<float> rope_table(int T, int D, float theta);  // [T, D/2, 2], computed in double

void qk_norm_rope_forward(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* qkv, const float* pre_k,
                          const float* pre_v, const __nv_bfloat16* q_w, const __nv_bfloat16* k_w, const float2* rope,
                          __nv_bfloat16* out, float* rstd_q, float* rstd_k);

// From dout = dq_r | dk_r (row stride ld) to dq (gradient of raw q) and dk_s (gradient of the
// shifted k, = raw k without shift); both with row stride ld and allowed to alias dout.
// dw_partial: [partial_blocks(N), dq + dkv] partial sums of the q_norm | k_norm weight gradients.
void qk_norm_rope_backward(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                           const float* pre_k, const __nv_bfloat16* q_w, const __nv_bfloat16* k_w, const float2* rope,
                           const float* rstd_q, const float* rstd_k, __nv_bfloat16* dq, __nv_bfloat16* dk_s,
                           float* dw_partial);

// Token-shift backward for k and v: ds = dk_s | dv_s (row stride ld), writes dkv = dk | dv of the
// raw projections (row stride ld, must not alias ds) and the pre-activation gradients [N, Hkv] (rows of
// pre_ld, as pre_k and pre_v).
void token_shift_backward(cudaStream_t s, const QkvShape& sh, const __nv_bfloat16* qkv, const float* pre_k,
                          const float* pre_v, const __nv_bfloat16* ds, __nv_bfloat16* dkv, __nv_bfloat16* dpre_k,
                          __nv_bfloat16* dpre_v);

constexpr int kQkNormMaxDim = 4096;

}  // namespace gfwa::cuda
