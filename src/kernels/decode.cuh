// One decode step of GatedFWA attention through the O(W) cache, on the GPU: the bf16 twin of
// kernels/decode_cpu.h (same cache layout and rules; keys and values bf16, Lam fp32 relative to a
// base that moves to the newest token every cap positions, lam_now double). Every sequence b of
// the batch appends one token at its own position pos[b] (device memory, so a captured CUDA graph
// replays the step as positions advance).
//   qkv    [B, d + 2*dkv] bf16  raw projections q | k | v of the new tokens (d = H*D; dkv = Hkv*D,
//                                the K/V heads of grouped-query attention)
//   pre_k, pre_v [B, Hkv] token-shift pre-activations (null without token shift)
//   hg, pre      [B, H]  gate pre-activations (null unless gatedfwa)
//   q, o   [B, d] bf16    the query after QK-norm and RoPE; the attention output
// The attention splits each sequence's keys into chunks of kDecodeChunk positions, one CTA per
// (chunk, query head, sequence), reading K/V head h / (H/Hkv), and merges the chunks' softmax
// partials (flash-decoding), so a long full-attention cache or a batch of one still fills the GPU.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/attention_mode.h"

namespace gfwa::cuda {

constexpr int kDecodeChunk = 128;

struct DecodeDims {
  int B, H, D, cap;
  AttnMode mode;
  bool token_shift;
  float eps, theta;  // QK-norm epsilon, RoPE base
  int Hkv;           // K/V heads, divides H
};

struct DecodeCacheDev {
  __nv_bfloat16 *k, *v;              // [B, Hkv, cap, D]
  float* lam;                        // [B, H, cap]   gatedfwa (the gates are per query head)
  double* lam_now;                   // [B, H]        gatedfwa
  __nv_bfloat16 *shift_k, *shift_v;  // [B, Hkv*D]    token shift: raw k, v of the previous token
};

// Throws std::invalid_argument for a shape the kernels do not take (head dim 64 or 128, B, H >= 1,
// Hkv dividing H).
void check_decode_dims(const DecodeDims& d);

void decode_append(cudaStream_t s, const DecodeDims& dims, const DecodeCacheDev& c, const int64_t* pos,
                   const __nv_bfloat16* qkv, const float* pre_k, const float* pre_v, const float* hg,
                   const float* pre, const __nv_bfloat16* q_norm_w, const __nv_bfloat16* k_norm_w,
                   __nv_bfloat16* q);

// Floats of the partials decode_attention needs in `workspace`.
size_t decode_attention_workspace_floats(const DecodeDims& dims);
void decode_attention(cudaStream_t s, const DecodeDims& dims, const DecodeCacheDev& c, const int64_t* pos,
                      const __nv_bfloat16* q, __nv_bfloat16* o, float* workspace);

// After a training forward over one sequence of T tokens, puts its last min(T, cap) keys, values
// and Lam into slot b (Lam rebased on token T-1), and token T-1's raw k, v into the shift state.
//   k, v, raw_k, raw_v: row t at ptr + t * row_stride (bf16, Hkv*D features); lam [T, H] (null unless gatedfwa)
void decode_fill(cudaStream_t s, const DecodeDims& dims, const DecodeCacheDev& c, int b, int T,
                 const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* raw_k,
                 const __nv_bfloat16* raw_v, int64_t row_stride, const float* lam);

// pos[b] += 1 for every sequence (the end of a step).
void decode_advance(cudaStream_t s, int64_t* pos, int B);

// ids[b] = argmax of logits row b over [0, limit) (lowest id on ties): greedy decoding without
// copying the logits to the host.
void argmax_rows(cudaStream_t s, const float* logits, int B, int V, int limit, int32_t* ids);

}  // namespace gfwa::cuda
