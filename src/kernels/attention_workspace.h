// The attention backward's workspace (AttnBwdParams::workspace in attention.h), laid out from the shape alone so that
// the cuda backend's memory plan (model/cuda_memory_plan.cpp) sizes it without a GPU. Both backward paths take the
// same workspace; the mma.sync one uses delta only, the sm_90a one (attention_bwd_sm90_kernel.cuh) the rest:
//   delta    [B, H, T] fp32: rowsum(dO * O)
//   rows     [B, H, Tpad] fp32 delta, then [B, H, Tpad] pairs (lam (gatedfwa), lse); Tpad = T rounded up to 128:
//            per query head contiguous in t and zero past T, so that a tile's values are one aligned bulk copy or loads
//            at fixed offsets
//   dq_acc   the fp32 dQ accumulator: one block per (b, h, query tile of BM rows), BM x D values (the 8-column
//            groups of row r XOR-swizzled by r % 8) then the tile's BM row sums of dS; BM = attn_bwd_sm90_query_tile(D)
//   tickets  one uint32 per (b, h, query tile): how many key tiles have added their part to its block so far
#pragma once
#include <cstddef>

namespace gfwa {

// Query rows per tile of the sm_90a backward: 64 at D = 128 (registers: dK, dV and S, dP per warpgroup), 128 at D <= 64.
constexpr int attn_bwd_sm90_query_tile(int D) { return D > 64 ? 64 : 128; }
// The sm_90a backward's key tile, and the padding of its [B, H, Tpad] arrays.
constexpr int kAttnBwdSm90KeyTile = 128;

struct AttnBwdWorkspace {
  size_t T_pad;                            // T rounded up to kAttnBwdSm90KeyTile
  size_t delta, rows, dq_acc, tickets;     // byte offsets, each 256-byte aligned
  size_t bytes;                            // total
};

inline AttnBwdWorkspace attn_bwd_workspace(int B, int T, int H, int D) {
  const size_t BM = size_t(attn_bwd_sm90_query_tile(D)), tiles = size_t(B) * H * ((size_t(T) + BM - 1) / BM);
  auto align = [](size_t x) { return (x + 255) / 256 * 256; };
  AttnBwdWorkspace w;
  w.T_pad = (size_t(T) + kAttnBwdSm90KeyTile - 1) / kAttnBwdSm90KeyTile * kAttnBwdSm90KeyTile;
  w.delta = 0;
  w.rows = align(size_t(B) * H * T * sizeof(float));
  w.dq_acc = w.rows + align(3 * size_t(B) * H * w.T_pad * sizeof(float));
  w.tickets = w.dq_acc + align(tiles * BM * (size_t(D) + 1) * sizeof(float));
  w.bytes = w.tickets + tiles * sizeof(unsigned);
  return w;
}

}  // namespace gfwa
