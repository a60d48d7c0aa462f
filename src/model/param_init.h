// The documented, seed-deterministic parameter initialisation shared by every backend:
//   embed, attn.wq/wk/wv, mlp.w1/w3, attn.gate_w   N(0, init_std)
//   attn.nsa_gate                                  N(0, init_std)   (NSA's gates start near sigmoid(0) = 1/2)
//   attn.wo, mlp.w2                                N(0, init_std / sqrt(2 * n_layers))
//   every RMSNorm weight (incl. QK-norm, final)    1
//   attn.gate_b                                    attention.gate_bias_init
//   attn.gate_sharp                                0   (beta = 1 + ELU(0) = 1)
//   attn.shift_k / shift_v                         0   (a = 1/2: half the previous token)
// Normal draws come from one NormalRng(seed) stream, taken tensor by tensor in ParamLayout order,
// element by element; constant tensors take no draws. Values are computed in double, stored fp32.
#pragma once
#include <cstdint>

#include "model/model_config.h"
#include "model/param_layout.h"

namespace gfwa {

// Writes layout.total() floats to out.
void init_parameters(const ModelConfig& cfg, const ParamLayout& layout, uint64_t seed, float* out);

}  // namespace gfwa
