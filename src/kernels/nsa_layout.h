// Where the CUDA NSA core (nsa.h) keeps its intermediates: the tensors the forward saves for the backward and
// the backward's workspace, as byte offsets into one buffer each, computed without CUDA, so that the cuda
// backend's memory plan (model/cuda_memory_plan.h) counts them on any machine. nsa_api.cu turns the offsets
// into pointers. Every region starts 256-byte aligned; bf16 elements are 2 bytes.
#pragma once
#include <cstddef>
#include <string>

#include "kernels/nsa_shape.h"

namespace gfwa {

// How the backward splits the work of one K/V head that many queries read (results differ only in the
// order of fp32 sums): the compressed dK/dV in chunks of cmp_rows query rows, and each selected block's
// dK/dV in pieces of about sel_rows query rows (sel_rows / G tokens), so a block that every token picks
// (an attention sink) does not serialise the launch. Partial sums go to the workspace and are added in order.
struct NsaSplit {
  int cmp_rows = 16384;  // a multiple of 64
  int sel_rows = 8192;
};

// Empty when `split` suits `s`, else what is wrong, naming the field and its value.
std::string nsa_split_error(const NsaShape& s, const NsaSplit& split);

// The forward's intermediates (nsa.h NsaSaved): layouts as in nsa_cpu.h.
struct NsaSavedOffsets {
  size_t k_cmp, v_cmp;           // bf16 [B, T/block, Hkv, D]
  size_t o_cmp, o_sel, o_win;    // bf16 [B, T, H, D]
  size_t lse_cmp, lse_sel;       // fp32 [B, T, H]
  size_t lse_win;                // fp32 [B, H, T]
  size_t idx;                    // int32 [B, T, Hkv, top_k]
  size_t bytes;
};
NsaSavedOffsets nsa_saved_offsets(const NsaShape& s);

// The backward's workspace.
struct NsaBwdOffsets {
  size_t dout_cmp, dout_sel, dout_win;   // bf16 [B, T, H, D]: g_b * dout
  size_t delta_cmp, delta_sel;           // fp32 [B, T, H]
  size_t dq_acc;                         // fp32 [B, T, H, D]: compressed + selected dq
  size_t cmp_part_k, cmp_part_v;         // fp32 [n_chunks, B, Hkv, T/block, D]
  size_t dk_cmp, dv_cmp;                 // fp32 [B, T/block, Hkv, D]
  size_t bitmap, count, tok_off, item_off, list;  // the selected blocks' token lists (nsa_launch.h SelIndex)
  size_t sel_part_k, sel_part_v;         // fp32 [B*Hkv, max_items, block, D]
  size_t dq_win;                         // bf16 [B, T, H, D]
  size_t dk_win, dv_win;                 // bf16 [B, T, Hkv, D]: summed over each group by attention_backward
  size_t attn_ws;                        // the sliding branch's attention backward: fp32 delta [B, H, T]
  int n_chunks, words, item_tokens, max_items;
  size_t bytes;
};
// Throws std::invalid_argument (nsa_split_error) for a split the shape cannot take.
NsaBwdOffsets nsa_bwd_offsets(const NsaShape& s, const NsaSplit& split);

inline size_t nsa_saved_bytes(const NsaShape& s) { return nsa_saved_offsets(s).bytes; }
inline size_t nsa_bwd_workspace_bytes(const NsaShape& s, const NsaSplit& split) {
  return nsa_bwd_offsets(s, split).bytes;
}

}  // namespace gfwa
