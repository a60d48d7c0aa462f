#ifdef GFWA_WITH_CUDA
#include "model/cuda_param_layout.h"

#include <stdexcept>
#include <string>

#include "model/cuda_memory_plan.h"

namespace gfwa {

DeviceParamLayout::DeviceParamLayout(const ModelConfig& cfg) : layout_(cfg) {
  const auto& ts = layout_.tensors();
  bf16_offset_ = cuda_bf16_offsets(layout_, &bf16_total_);
  std::vector<size_t> offs, numels;
  std::vector<bool> decay;
  for (const ParamTensor& t : ts) {
    offs.push_back(t.offset);
    numels.push_back(t.numel);
    decay.push_back(t.decay);
  }
  chunks_ = cuda::adamw_chunks(offs, bf16_offset_, numels, decay);

  auto find = [&](const std::string& n, bool b) {
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].name == n) return b ? bf16_offset_[i] : ts[i].offset;
    if (b) throw std::out_of_range("no parameter tensor named '" + n + "'");
    return layout_.get(n).offset;  // throws, naming the tensor
  };
  embed_bf16_ = find("embed", true);
  final_norm_f32_ = find("final_norm", false);
  final_norm_bf16_ = find("final_norm", true);
  const bool shift = cfg.attention.token_shift;
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    for (int b = 0; b < 2; ++b) {
      LayerOffsets o{};
      o.attn_norm = find(p + "attn_norm", b);
      o.wqkv = find(p + "attn.wq", b);
      o.q_norm = find(p + "attn.q_norm", b);
      o.k_norm = find(p + "attn.k_norm", b);
      if (shift) {
        o.shift_k = find(p + "attn.shift_k", b);
        o.shift_v = find(p + "attn.shift_v", b);
      }
      if (cfg.layer_gated(l)) {
        o.gate_w = find(p + "attn.gate_w", b);
        o.gate_b = find(p + "attn.gate_b", b);
        o.gate_sharp = find(p + "attn.gate_sharp", b);
      }
      if (cfg.layer_nsa(l)) o.nsa_gate = find(p + "attn.nsa_gate", b);
      o.wo = find(p + "attn.wo", b);
      o.mlp_norm = find(p + "mlp_norm", b);
      o.w13 = find(p + "mlp.w1", b);
      o.w2 = find(p + "mlp.w2", b);
      (b ? bf16_ : f32_).push_back(o);
    }
  }
}

std::vector<cuda::AdamWChunk> DeviceParamLayout::chunks(Tensors which) const {
  return shard_chunks(plan_shards(layout_.total(), 1), 0, which);  // one rank: the whole layout
}

std::vector<cuda::AdamWChunk> DeviceParamLayout::shard_chunks(const ShardPlan& plan, int rank, Tensors which) const {
  const size_t shard_off = plan.shard * size_t(rank);
  std::vector<size_t> so, sb, sn;
  std::vector<bool> sd;
  for (const auto& pc : shard_pieces(layout_.tensors(), plan, rank)) {
    const ParamTensor& t = layout_.tensors()[size_t(pc.tensor)];
    if ((which == Tensors::hidden && !t.hidden) || (which == Tensors::not_hidden && t.hidden)) continue;
    so.push_back(pc.begin - shard_off);
    sb.push_back(bf16_offset_[size_t(pc.tensor)] + (pc.begin - t.offset));
    sn.push_back(pc.end - pc.begin);
    sd.push_back(t.decay);
  }
  return cuda::adamw_chunks(so, sb, sn, sd);
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
