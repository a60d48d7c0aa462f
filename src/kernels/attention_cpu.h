// CPU reference of GatedFWA attention (docs/gatedfwa.md section 2 and 4): the ground truth for the CUDA
// kernels and the attention of the cpu backend. Templated so tests can run it in double.
//
// Layouts (token-major, as produced by the projections):
//   q, o, dq, dout : [B, T, H, D]
//   k, v, dk, dv   : [B, T, Hkv, D]  grouped-query attention: query head h reads K/V head h / (H / Hkv)
//   lam, dlam      : [B, T, H]   inclusive prefix sums of log-gates (gatedfwa only), per query head
//   lse            : [B, H, T]   natural-log row sums of exp(logits)
// Logits: s[i,j] = q_i.k_j * scale + (lam[i] - lam[j]) for i-W+1 <= j <= i, scale = 1/sqrt(D), with k the
// query head's K/V head. dk and dv sum over the H / Hkv query heads that share a K/V head.
#pragma once
#include "kernels/attention_mode.h"

namespace gfwa::cpu {

struct AttnShape {
  int B, T, H, D;
  int window;  // W >= 1; ignored in full mode
  int Hkv;     // K/V heads: divides H (H: multi-head, 1: multi-query); std::invalid_argument otherwise
};

template <class F>
void attention_forward(const AttnShape& s, AttnMode mode, const F* q, const F* k, const F* v, const F* lam,
                       F* o, F* lse);

// dlam may be null unless mode == gatedfwa. Outputs are overwritten, not accumulated.
template <class F>
void attention_backward(const AttnShape& s, AttnMode mode, const F* q, const F* k, const F* v, const F* lam,
                        const F* o, const F* lse, const F* dout, F* dq, F* dk, F* dv, F* dlam);

}  // namespace gfwa::cpu
