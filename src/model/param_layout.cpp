#include "model/param_layout.h"

#include <stdexcept>

namespace gfwa {

namespace {
constexpr bool kHidden = true;  // the attention and MLP projections (ParamTensor::hidden)
}  // namespace

ParamLayout::ParamLayout(const ModelConfig& cfg) {
  // K and V (and what acts on them: k_norm, the token-shift vectors) have the kv heads only.
  const int d = cfg.d_model, H = cfg.n_heads, Hkv = cfg.kv_heads(), dkv = cfg.kv_dim(), F = cfg.hidden();
  add("embed", {cfg.vocab_size, d});  // tied: also the classifier
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "attn_norm", {d});
    add(p + "attn.wq", {d, d}, kHidden);
    add(p + "attn.wk", {dkv, d}, kHidden);
    add(p + "attn.wv", {dkv, d}, kHidden);
    add(p + "attn.q_norm", {d});
    add(p + "attn.k_norm", {dkv});
    if (cfg.attention.token_shift) {
      add(p + "attn.shift_k", {Hkv, d});
      add(p + "attn.shift_v", {Hkv, d});
    }
    if (cfg.layer_gated(l)) {
      add(p + "attn.gate_w", {H, d});
      add(p + "attn.gate_b", {H});
      add(p + "attn.gate_sharp", {H, d});
    }
    if (cfg.layer_nsa(l)) add(p + "attn.nsa_gate", {3 * H, d});  // NSA's branch gates, row 3h + branch
    add(p + "attn.wo", {d, d}, kHidden);
    add(p + "mlp_norm", {d});
    add(p + "mlp.w1", {F, d}, kHidden);
    add(p + "mlp.w3", {F, d}, kHidden);
    add(p + "mlp.w2", {d, F}, kHidden);
  }
  add("final_norm", {d});
}

void ParamLayout::add(const std::string& name, std::vector<int> shape, bool hidden) {
  ParamTensor t;
  t.name = name;
  t.numel = 1;
  for (int s : shape) t.numel *= size_t(s);
  t.decay = shape.size() == 2;
  t.hidden = hidden;
  t.shape = std::move(shape);
  t.offset = total_;
  total_ += t.numel;
  tensors_.push_back(std::move(t));
}

const ParamTensor& ParamLayout::get(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return t;
  throw std::out_of_range("no parameter tensor named '" + name + "'");
}

}  // namespace gfwa
