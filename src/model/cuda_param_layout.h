// Where the cuda backend keeps every parameter tensor. The fp32 buffers (master weights,
// gradients, AdamW moments) follow ParamLayout, so host copies and checkpoints are the cpu
// backend's; the bf16 copy the GEMMs read has a layout of its own: every tensor group starts
// 256-byte aligned (fast GEMM paths) and wq|wk|wv, w1|w3 stay contiguous, so each group is one
// GEMM operand. The fused AdamW (and Muon's momentum) walk both through chunks that carry both starts.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cstddef>
#include <vector>

#include "kernels/adamw.cuh"
#include "model/model_config.h"
#include "model/param_layout.h"
#include "model/zero1_shards.h"

namespace gfwa {

// Element offsets of one layer's tensors (shift_* only with token shift, gate_* only in layers with
// GatedFWA's gates, nsa_gate only in nsa layers).
struct LayerOffsets {
  size_t attn_norm, wqkv, q_norm, k_norm, shift_k, shift_v, gate_w, gate_b, gate_sharp, nsa_gate, wo, mlp_norm, w13,
      w2;
};

class DeviceParamLayout {
 public:
  explicit DeviceParamLayout(const ModelConfig& cfg);

  const ParamLayout& layout() const { return layout_; }
  size_t f32_total() const { return layout_.total(); }
  size_t bf16_total() const { return bf16_total_; }
  const LayerOffsets& f32(int layer) const { return f32_[size_t(layer)]; }
  const LayerOffsets& bf16(int layer) const { return bf16_[size_t(layer)]; }
  size_t embed_bf16() const { return embed_bf16_; }  // the fp32 embedding is at offset 0
  size_t final_norm_f32() const { return final_norm_f32_; }
  size_t final_norm_bf16() const { return final_norm_bf16_; }

  size_t bf16_offset(int tensor) const { return bf16_offset_[size_t(tensor)]; }

  // Which tensors a chunk list covers: all of them, or (optimizer.type muon) the hidden matrices
  // (ParamTensor::hidden: Muon's) or the others (AdamW's).
  enum class Tensors { all, hidden, not_hidden };
  // AdamW chunks over the whole layout.
  const std::vector<cuda::AdamWChunk>& chunks() const { return chunks_; }
  std::vector<cuda::AdamWChunk> chunks(Tensors which) const;
  // AdamW chunks over rank's ZeRO-1 shard: fp32 starts relative to the shard, bf16 starts absolute.
  std::vector<cuda::AdamWChunk> shard_chunks(const ShardPlan& plan, int rank, Tensors which = Tensors::all) const;

 private:
  ParamLayout layout_;
  std::vector<size_t> bf16_offset_;  // per tensor
  size_t bf16_total_ = 0;
  std::vector<LayerOffsets> f32_, bf16_;
  size_t embed_bf16_ = 0, final_norm_f32_ = 0, final_norm_bf16_ = 0;
  std::vector<cuda::AdamWChunk> chunks_;
};

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
