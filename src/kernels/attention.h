// CUDA GatedFWA attention (docs/gatedfwa.md sections 2, 4). Host API; kernels in *.cu; the gate scan
// that produces lam is gate.h.
//
// Layouts (as in attention_cpu.h), element (b, t, h, d) of a [B,T,heads,D] tensor x lives at
//   x + (b*T + t) * x_row_stride + h*D + d
// with H heads for q, o, dq, dout and Hkv heads for k, v, dk, dv (grouped-query attention: Hkv divides H,
// query head h reads K/V head h / (H/Hkv)); so q/k/v (and dq/dk/dv) may be views into a fused buffer of
// rows q | k | v (row stride (H + 2*Hkv)*D).
// Row strides must be multiples of 8 elements and base pointers 16-byte aligned (16-byte copies).
//   lam, dlam: [B,T,H] fp32 (inclusive prefix sums of log-gates, per query head; gatedfwa only)
//   lse:       [B,H,T] fp32, natural log
// Head dims 64 and 128; any B, T, H >= 1, Hkv dividing H, and W >= 1 (full mode ignores W).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/attention_mode.h"

namespace gfwa::cuda {

// Which kernels run, forward and backward (docs/kernels.md). automatic: the sm_90a kernels (wgmma, TMA,
// warp-specialised; attention_{fwd,bwd}_sm90_*.cu) on compute capability 9.0 GPUs, the mma.sync kernels (sm_80 and
// later) on the others. sm80 / sm90 force one, so tests and `gfwa bench attention --path` can compare them; sm90 on
// another GPU is an error. Either backward takes either forward's o and lse.
enum class AttnPath { automatic, sm80, sm90 };

inline const char* attn_path_name(AttnPath p) {
  switch (p) {
    case AttnPath::automatic: return "auto";
    case AttnPath::sm80: return "sm80";
    case AttnPath::sm90: return "sm90";
  }
  return "?";
}

// Returns false when `s` names no path ("auto", "sm80", "sm90").
inline bool parse_attn_path(const std::string& s, AttnPath* out) {
  constexpr AttnPath all[] = {AttnPath::automatic, AttnPath::sm80, AttnPath::sm90};
  return parse_by_name(s, all, attn_path_name, out);
}

// The sm90 forward's schedule (docs/kernel_notes.md, "v7"); both compute the same o and lse, and the backward has one
// kernel. per_tile: one CTA per (query tile, head, batch), producer 24 / consumers 240 registers (v5). persistent: one
// CTA per SM walking its share of the tiles longest first, its producer loading the next tile's Q (into a second Q
// buffer) and K/V while the consumers finish this one; producer 40 / consumers 232 registers (its item loop spills
// at 24). automatic: per_tile for full causal attention at D 128 (long key loops: the consumers' 240 registers are
// worth more there than the overlap), persistent otherwise (windowed modes and D 64: the overlap of one tile's
// epilogue with the next one's loads wins; measured in kernel_notes.md, "v7 re-measured").
enum class Sm90FwdSchedule { automatic, per_tile, persistent };

inline const char* sm90_fwd_schedule_name(Sm90FwdSchedule s) {
  switch (s) {
    case Sm90FwdSchedule::automatic: return "auto";
    case Sm90FwdSchedule::per_tile: return "per-tile";
    case Sm90FwdSchedule::persistent: return "persistent";
  }
  return "?";
}

// Returns false when `s` names no schedule ("auto", "per-tile", "persistent").
inline bool parse_sm90_fwd_schedule(const std::string& s, Sm90FwdSchedule* out) {
  constexpr Sm90FwdSchedule all[] = {Sm90FwdSchedule::automatic, Sm90FwdSchedule::per_tile, Sm90FwdSchedule::persistent};
  return parse_by_name(s, all, sm90_fwd_schedule_name, out);
}

struct AttnParams {
  const __nv_bfloat16 *q, *k, *v;
  int64_t q_row_stride, k_row_stride, v_row_stride, o_row_stride;
  const float* lam;  // gatedfwa only; may be null otherwise
  __nv_bfloat16* o;
  float* lse;
  int B, T, H, D, window;
  int Hkv;  // K/V heads, divides H (H: multi-head, 1: multi-query)
  AttnMode mode;
  AttnPath path;  // which kernels (forward and backward); value-initialised to automatic
  Sm90FwdSchedule sm90_schedule;  // the sm90 forward's schedule; value-initialised to automatic
};

// The schedule the sm90 forward runs for `p`: p.sm90_schedule, automatic resolved by the mode and head dim.
inline Sm90FwdSchedule sm90_fwd_schedule(const AttnParams& p) {
  if (p.sm90_schedule != Sm90FwdSchedule::automatic) return p.sm90_schedule;
  return p.D == 128 && p.mode == AttnMode::full ? Sm90FwdSchedule::per_tile : Sm90FwdSchedule::persistent;
}

// The forward's fields (its outputs o, lse are read here) plus the gradients.
struct AttnBwdParams : AttnParams {
  const __nv_bfloat16* dout;
  int64_t dout_row_stride;
  __nv_bfloat16 *dq, *dk, *dv;  // overwritten; dk, dv summed over each K/V head's query heads
  int64_t dq_row_stride, dk_row_stride, dv_row_stride;
  float* dlam;       // [B,T,H], overwritten; gatedfwa only
  float* workspace;  // attention_bwd_workspace_bytes(*this) bytes, 16-byte aligned (attention_workspace.h)
};

// Row stride of the fused q | k | v rows: H query heads, Hkv key heads, Hkv value heads.
inline int64_t qkv_row_stride(int H, int Hkv, int D) { return int64_t(H + 2 * Hkv) * D; }

// The layout every caller uses: q and k the first H*D and next Hkv*D columns of fused q | k | v rows
// (qkv_row_stride), v with the same stride (the last Hkv*D columns of those rows, or of another fused
// buffer), o packed [B,T,H,D]. lam: gatedfwa only (nullptr otherwise).
inline AttnParams attn_params(const __nv_bfloat16* qk, const __nv_bfloat16* v, const float* lam, __nv_bfloat16* o,
                              float* lse, int B, int T, int H, int Hkv, int D, int window, AttnMode mode) {
  const int64_t hd = int64_t(H) * D;
  AttnParams p{};
  p.q = qk;
  p.k = qk + hd;
  p.v = v;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = qkv_row_stride(H, Hkv, D);
  p.o_row_stride = hd;
  p.lam = lam;
  p.o = o;
  p.lse = lse;
  p.B = B;
  p.T = T;
  p.H = H;
  p.Hkv = Hkv;
  p.D = D;
  p.window = window;
  p.mode = mode;
  return p;
}

// The backward of `fwd`: dout packed [B,T,H,D]; dq | dk | dv the parts of fused rows of dqkv
// (qkv_row_stride); dlam gatedfwa only; workspace of attention_bwd_workspace_bytes(fwd) bytes.
inline AttnBwdParams attn_bwd_params(const AttnParams& fwd, const __nv_bfloat16* dout, __nv_bfloat16* dqkv,
                                     float* dlam, float* workspace) {
  const int64_t hd = int64_t(fwd.H) * fwd.D, kvd = int64_t(fwd.Hkv) * fwd.D;
  AttnBwdParams p{};
  static_cast<AttnParams&>(p) = fwd;
  p.dout = dout;
  p.dout_row_stride = hd;
  p.dq = dqkv;
  p.dk = dqkv + hd;
  p.dv = dqkv + hd + kvd;
  p.dq_row_stride = p.dk_row_stride = p.dv_row_stride = qkv_row_stride(fwd.H, fwd.Hkv, fwd.D);
  p.dlam = dlam;
  p.workspace = workspace;
  return p;
}

// The same for both paths and any device: attn_bwd_workspace(B, T, H, D).bytes (attention_workspace.h).
size_t attention_bwd_workspace_bytes(const AttnParams& p);
// The kernels attention_forward(p) and attention_backward(p) run on the current device (sm80 or sm90, never
// automatic); throws when p.path forces sm90 on a device that is not compute capability 9.0.
AttnPath attention_path(const AttnParams& p);
void attention_forward(const AttnParams& p, cudaStream_t stream);
// Deterministic: the same bits on every run. No float atomics: every output element is written by one thread, or
// (sm90, dq and dlam's row sums) accumulated in a fixed order (attention_bwd_sm90_kernel.cuh).
void attention_backward(const AttnBwdParams& p, cudaStream_t stream);

}  // namespace gfwa::cuda
