// The projections of a layer's normed input h1 narrower than a head: token shift's attn.shift_k and
// attn.shift_v (Hkv outputs each), GatedFWA's attn.gate_w and attn.gate_sharp (H each) and NSA's
// attn.nsa_gate (3H). The cuda backend runs them as one GEMM per pass (docs/cuda_backend.md): their bf16
// weights are contiguous rows in this order (cuda_bf16_offsets), and per token their fp32 outputs, and
// the bf16 gradients of those, are the columns of one row of `width` elements. The fp32 layout
// (ParamLayout: checkpoints, gradients, ZeRO-1) is unchanged: attn.gate_b lies between gate_w and
// gate_sharp there, so the one weight-gradient GEMM's rows are added to it in runs of adjacent tensors.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/param_layout.h"

namespace gfwa {

struct SkinnyProjections {
  // First column of each part in a row (= first row of its weight in the packed [width, d] operand),
  // -1 where the layer has none.
  int shift_k = -1, shift_v = -1, gate_w = -1, gate_sharp = -1, nsa_gate = -1;
  int width = 0;
};

SkinnyProjections skinny_projections(const ModelConfig& cfg, int layer);
int max_skinny_width(const ModelConfig& cfg);  // over the layers; 0 when no layer has any

// Whether a ParamLayout name ("layers.3.attn.gate_w") is one of the skinny projections' weights.
bool is_skinny_projection(const std::string& name);

// Rows [row, row + rows) of a layer's packed [width, d] weight gradient belong at fp32 offset f32.
struct SkinnyRun {
  int row, rows;
  size_t f32;
};
// Layer l's packed rows as runs of tensors adjacent in `layout` (ParamLayout of cfg), in row order.
std::vector<SkinnyRun> skinny_f32_runs(const ModelConfig& cfg, const ParamLayout& layout, int layer);

}  // namespace gfwa
