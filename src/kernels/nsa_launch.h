// Internal: the launchers of the NSA kernels (nsa_{compress,select,mix}.cu), the scalars they share and
// their argument blocks; nsa_api.cu checks the arguments, carves the workspace and calls them in order.
// Tensors named "packed" have row stride H*D (or Hkv*D), the layouts of nsa.h otherwise.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/nsa.h"

namespace gfwa::cuda::detail {

using bf16 = __nv_bfloat16;

struct NsaDims {
  int B, T, H, Hkv, G, D;
  int Tc;  // complete blocks (compressed keys)
  int Tb;  // all blocks
  int S;   // top_k
  float scale, scale_log2;
};

// One bf16 [B, T, heads, D] tensor with its row stride.
struct RowsIn {
  const bf16* p;
  int64_t stride;
};

struct CmpFwdArgs {
  RowsIn q;
  const bf16 *k_cmp, *v_cmp;  // packed
  bf16* o_cmp;                // packed
  float* lse_cmp;
};

struct CmpBwdArgs {
  RowsIn q;
  const bf16 *k_cmp, *v_cmp;  // packed
  const bf16* dout;           // packed: g_cmp * dout
  const float *lse, *delta;   // [B,T,H]
  float* dq;                  // packed fp32, overwritten
  float *part_k, *part_v;     // [n_chunks, B, Hkv, Tc, D] fp32
  int chunk_rows, n_chunks;
  float *dk_cmp, *dv_cmp;     // [B, Tc, Hkv, D] fp32: the chunk sums
};

struct TopkArgs {
  RowsIn q;
  const bf16* k_cmp;  // packed
  const float* lse_cmp;
  int32_t* idx;
};

struct SelFwdArgs {
  RowsIn q, k, v;
  const int32_t* idx;
  bf16* o_sel;  // packed
  float* lse_sel;
};

// Per (b, hk): the tokens that selected each block, sorted by (block, token), and the backward's work items
// (pieces of at most item_tokens tokens of one block).
struct SelIndex {
  uint32_t* bitmap;  // [B*Hkv, Tb, words] bit t of row c: token t selected block c
  int* count;        // [B*Hkv, Tb]
  int* tok_off;      // [B*Hkv, Tb + 1] exclusive prefix sums of count
  int* item_off;     // [B*Hkv, Tb + 1] exclusive prefix sums of ceil(count / item_tokens)
  int* list;         // [B*Hkv, T*S]   token ids
  int words;         // ceil(T / 32)
  int item_tokens;
  int max_items;     // bound on the items of one (b, hk): Tb + ceil(T*S / item_tokens)
};

struct SelBwdArgs {
  RowsIn q, k, v;
  const int32_t* idx;
  const bf16* dout;          // packed: g_sel * dout
  const float *lse, *delta;  // [B,T,H]
  float* dq;                 // packed fp32, accumulated into
  SelIndex ix;
  float *part_k, *part_v;    // [B*Hkv, max_items, 64, D] fp32
};

void launch_nsa_pool(const NsaDims& n, RowsIn x, bf16* x_cmp, cudaStream_t st);
void launch_nsa_cmp_fwd(const NsaDims& n, const CmpFwdArgs& a, cudaStream_t st);
void launch_nsa_cmp_bwd(const NsaDims& n, const CmpBwdArgs& a, cudaStream_t st);
void launch_nsa_topk(const NsaDims& n, const TopkArgs& a, cudaStream_t st);
void launch_nsa_sel_fwd(const NsaDims& n, const SelFwdArgs& a, cudaStream_t st);
void launch_nsa_sel_index(const NsaDims& n, const int32_t* idx, const SelIndex& ix, cudaStream_t st);
void launch_nsa_sel_bwd(const NsaDims& n, const SelBwdArgs& a, cudaStream_t st);

// nsa_mix.cu
void launch_nsa_mix(const NsaDims& n, const float* g_cmp, const float* g_sel, const float* g_win, const bf16* o_cmp,
                    const bf16* o_sel, const bf16* o_win, bf16* o, int64_t o_stride, cudaStream_t st);
struct MixBwdArgs {
  RowsIn dout;
  const float *g_cmp, *g_sel, *g_win;
  const bf16 *o_cmp, *o_sel, *o_win;
  float *dg_cmp, *dg_sel, *dg_win;
  bf16 *dout_cmp, *dout_sel, *dout_win;  // packed g_b * dout
  float *delta_cmp, *delta_sel;          // g_b * (dout . o_b)
};
void launch_nsa_mix_bwd(const NsaDims& n, const MixBwdArgs& a, cudaStream_t st);
struct GradSumArgs {
  const float* dq_acc;   // packed fp32: compressed + selected
  const bf16* dq_win;    // packed
  const bf16 *dk_win, *dv_win;  // packed [B,T,Hkv,D]
  const float *dk_cmp, *dv_cmp;
  const float *part_k, *part_v;
  const int* item_off;
  int max_items;
  bf16 *dq, *dk, *dv;
  int64_t dq_stride, dk_stride, dv_stride;
};
void launch_nsa_grad_sum(const NsaDims& n, const GradSumArgs& a, cudaStream_t st);

}  // namespace gfwa::cuda::detail
