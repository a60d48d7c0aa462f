// Internal: per-head-dim launchers (one instantiation file each) and the scalars the host derives for them.
#pragma once
#include "kernels/attention.h"

namespace gfwa::cuda::detail {

struct AttnConsts {
  int W;             // effective window, clamped to T (full mode: T)
  bool gated;        // add (lam_i - lam_j)
  bool grouped;      // Hkv < H: grouped-query attention
  float scale;       // 1/sqrt(D)
  float scale_log2;  // scale * log2(e)
};

template <int D>
void launch_attn_fwd(const AttnParams& p, const AttnConsts& c, cudaStream_t stream);
template <int D>
void launch_attn_bwd(const AttnBwdParams& p, const AttnConsts& c, cudaStream_t stream);
// The sm_90a kernels (attention_{fwd,bwd}_sm90_kernel.cuh): compiled for sm_90a only, launched only on compute
// capability 9.0 devices (attention_path).
template <int D>
void launch_attn_fwd_sm90(const AttnParams& p, const AttnConsts& c, cudaStream_t stream);
template <int D>
void launch_attn_bwd_sm90(const AttnBwdParams& p, const AttnConsts& c, cudaStream_t stream);

}  // namespace gfwa::cuda::detail
