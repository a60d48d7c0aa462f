// CPU reference of the NSA attention core (docs/nsa.md): compressed, selected and sliding branches mixed by
// per-token, per-head gates. The ground truth of the CUDA kernels (nsa.h); computes in double, templated on
// the storage type like the other *_cpu twins.
//
// Layouts (token-major; G = H / Hkv, Tc = T / block, S = top_k):
//   q, o, o_cmp, o_sel, o_win, dq, dout : [B, T, H, D]
//   k, v, dk, dv                        : [B, T, Hkv, D]   query head h reads K/V head h / G
//   k_cmp, v_cmp, dk_cmp, dv_cmp        : [B, Tc, Hkv, D]  means over the complete blocks
//   lam, dlam, g_*, dg_*                : [B, T, H]
//   lse_cmp, lse_sel                    : [B, T, H]        natural log
//   lse_win                             : [B, H, T]        as attention_cpu.h writes it
//   idx                                 : [B, T, Hkv, S]   int32 block ids, ascending, -1 after the last
//
// Branches of query (t, h), scale = 1/sqrt(D):
//   compressed: softmax over the compressed keys c < (t + 1) / block (blocks that end at or before t);
//               none visible (t < block - 1): o_cmp = 0, lse_cmp = 0;
//   selected:   softmax over the tokens j <= t of the blocks in idx[t, h / G];
//   sliding:    attention_cpu.h with window W (swa, or gatedfwa with lam).
// Output: o = g_cmp * o_cmp + g_sel * o_sel + g_win * o_win.
// Selection of (t, group): its own block t / block, and the top_k - 1 blocks c < t / block of largest
// importance sum_{h in group} exp(q_h . k_cmp_c * scale - lse_cmp[t, h]) (the compressed branch's
// probabilities); ties go to the lower block id. The backward treats the selection as a constant.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/attention_mode.h"
#include "kernels/nsa_shape.h"

namespace gfwa::cpu {

template <class F>
struct NsaInputs {
  const F *q, *k, *v;
  const F* lam;  // gatedfwa sliding branch only; may be null for swa
  const F *g_cmp, *g_sel, *g_win;
};

// What the forward keeps for the backward (and what the CUDA twin tests compare stage by stage).
template <class F>
struct NsaSaved {
  std::vector<F> k_cmp, v_cmp;
  std::vector<F> o_cmp, lse_cmp, o_sel, lse_sel, o_win, lse_win;
  std::vector<int32_t> idx;
};

// Overwritten, not accumulated. dlam may be null unless the sliding branch is gatedfwa.
template <class F>
struct NsaGrads {
  F *dq, *dk, *dv, *dlam, *dg_cmp, *dg_sel, *dg_win;
};

// The stages, each usable alone (tests, the CUDA twin tests).
template <class F>
void nsa_pool(const NsaShape& s, const F* x, F* x_cmp);
template <class F>
void nsa_compressed_forward(const NsaShape& s, const F* q, const F* k_cmp, const F* v_cmp, F* o_cmp, F* lse_cmp);
// importance[c] for c < t / block of query group (b, t, hk), as defined above; empty for t < block.
template <class F>
void nsa_block_importance(const NsaShape& s, const F* q, const F* k_cmp, const F* lse_cmp, int b, int t, int hk,
                          std::vector<double>& importance);
template <class F>
void nsa_select(const NsaShape& s, const F* q, const F* k_cmp, const F* lse_cmp, int32_t* idx);
template <class F>
void nsa_selected_forward(const NsaShape& s, const F* q, const F* k, const F* v, const int32_t* idx, F* o_sel,
                          F* lse_sel);

// The whole core. nsa_forward selects the blocks; nsa_forward_blocks takes them (saved->idx) as given.
template <class F>
void nsa_forward(const NsaShape& s, AttnMode sliding, const NsaInputs<F>& in, F* o, NsaSaved<F>* saved);
template <class F>
void nsa_forward_blocks(const NsaShape& s, AttnMode sliding, const NsaInputs<F>& in, F* o, NsaSaved<F>* saved);
template <class F>
void nsa_backward(const NsaShape& s, AttnMode sliding, const NsaInputs<F>& in, const NsaSaved<F>& saved,
                  const F* dout, const NsaGrads<F>& grads);

}  // namespace gfwa::cpu
