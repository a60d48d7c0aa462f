// Pointers to one layer's tensors in a flat ParamLayout buffer (parameters or gradients), for the
// cpu model and the cpu decoder. Null where the tensor does not exist: shift_* without token shift,
// gate_* unless layer l has GatedFWA's gates, nsa_gate unless it is nsa.
#pragma once
#include <string>

#include "model/model_config.h"
#include "model/param_layout.h"

namespace gfwa {

template <class F>
struct CpuLayerParams {
  F *attn_norm, *wq, *wk, *wv, *q_norm, *k_norm, *shift_k, *shift_v, *gate_w, *gate_b, *gate_sharp, *nsa_gate, *wo;
  F *mlp_norm, *w1, *w3, *w2;
};

template <class F>
CpuLayerParams<F> cpu_layer_params(const ModelConfig& cfg, const ParamLayout& layout, F* base, int l) {
  const std::string p = "layers." + std::to_string(l) + ".";
  auto at = [&](const char* name) { return base + layout.get(p + name).offset; };
  const bool shift = cfg.attention.token_shift, gated = cfg.layer_gated(l);
  CpuLayerParams<F> lp;
  lp.attn_norm = at("attn_norm");
  lp.wq = at("attn.wq");
  lp.wk = at("attn.wk");
  lp.wv = at("attn.wv");
  lp.q_norm = at("attn.q_norm");
  lp.k_norm = at("attn.k_norm");
  lp.shift_k = shift ? at("attn.shift_k") : nullptr;
  lp.shift_v = shift ? at("attn.shift_v") : nullptr;
  lp.gate_w = gated ? at("attn.gate_w") : nullptr;
  lp.gate_b = gated ? at("attn.gate_b") : nullptr;
  lp.gate_sharp = gated ? at("attn.gate_sharp") : nullptr;
  lp.nsa_gate = cfg.layer_nsa(l) ? at("attn.nsa_gate") : nullptr;
  lp.wo = at("attn.wo");
  lp.mlp_norm = at("mlp_norm");
  lp.w1 = at("mlp.w1");
  lp.w3 = at("mlp.w3");
  lp.w2 = at("mlp.w2");
  return lp;
}

}  // namespace gfwa
