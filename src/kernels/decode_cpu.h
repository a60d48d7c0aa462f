// CPU reference of one decode step of GatedFWA attention through the O(W) cache (gatedfwa.md
// section 6; docs/generate.md): the fp32 twin of kernels/decode.cuh and the attention of the cpu
// decoder. A token of sequence b at position p (0-based) first goes into the cache (decode_append),
// then its query reads the cache (decode_attention).
//
// The cache of one layer, for B sequences, H query heads and Hkv key/value heads (grouped-query
// attention: query head h reads K/V head h / (H / Hkv)) of D features, `cap` entries per head:
//   k, v      [B, Hkv, cap, D]  keys after token shift, QK-norm and RoPE; values after token shift.
//                             Position p lives in entry p % cap: a ring of the last cap tokens
//                             (cap = W for swa and gatedfwa; full attention: cap >= every position).
//   lam       [B, H, cap]     gatedfwa: the prefix sum Lam of each cached token, relative to a base
//                             (per query head: the gates are);
//   lam_now   [B, H] double   and Lam of the newest token, relative to the same base. The bias of
//                             entry j is lam_now - lam[j]. Whenever p is a positive multiple of cap
//                             the base moves to the newest token (every entry -= lam_now, lam_now
//                             = 0), so magnitudes stay below ~2W*max(alpha) at any length and fp32
//                             keeps its digits after millions of tokens.
//   shift_k, shift_v [B, Hkv*D] token shift: the raw (pre-shift) k and v of the previous token.
// Inputs of a token (rows of the step's projections):
//   q [H*D], k, v [Hkv*D]  raw projections h Wq^T, h Wk^T, h Wv^T
//   pre_k, pre_v [Hkv] token-shift pre-activations h . ws (a = sigmoid), null without token shift
//   hg, pre   [H]    gate pre-activations (gatedfwa.md section 2), null unless gatedfwa
#pragma once
#include "kernels/attention_mode.h"

namespace gfwa::cpu {

struct DecodeShape {
  int B, H, D, cap;
  AttnMode mode;
  bool token_shift;
  double eps, theta;  // QK-norm epsilon, RoPE base
  int Hkv;            // K/V heads, divides H; std::invalid_argument otherwise
};

template <class F>
struct DecodeCache {
  F *k, *v, *lam, *shift_k, *shift_v;  // lam: gatedfwa; shift_*: token shift
  double* lam_now;                     // gatedfwa
};

// Token shift, QK-norm and RoPE of token `pos` of sequence b; stores its key, value and Lam in the
// cache and its query (normed, rotated) in q_out [H*D]. Throws std::invalid_argument when full
// attention runs out of entries (pos >= cap).
template <class F>
void decode_append(const DecodeShape& s, const DecodeCache<F>& c, int b, long long pos, const F* q, const F* k,
                   const F* v, const F* pre_k, const F* pre_v, const F* hg, const F* pre, const F* q_norm_w,
                   const F* k_norm_w, F* q_out);

// o [H*D] = softmax over the min(pos + 1, cap) cached entries of sequence b of
// q.k_j / sqrt(D) + (lam_now - lam_j), times v_j. pos is the position of the query (already appended).
template <class F>
void decode_attention(const DecodeShape& s, const DecodeCache<F>& c, int b, long long pos, const F* q, F* o);

}  // namespace gfwa::cpu
