#include "model/skinny_projections.h"

#include <algorithm>
#include <iterator>

namespace gfwa {
namespace {

// The parts in packed order, which is their order in ParamLayout (gate_b aside).
constexpr const char* kParts[] = {"attn.shift_k", "attn.shift_v", "attn.gate_w", "attn.gate_sharp", "attn.nsa_gate"};

}  // namespace

SkinnyProjections skinny_projections(const ModelConfig& cfg, int layer) {
  SkinnyProjections p;
  auto add = [&p](int& col, int rows) {
    col = p.width;
    p.width += rows;
  };
  if (cfg.attention.token_shift) {
    add(p.shift_k, cfg.kv_heads());
    add(p.shift_v, cfg.kv_heads());
  }
  if (cfg.layer_gated(layer)) {
    add(p.gate_w, cfg.n_heads);
    add(p.gate_sharp, cfg.n_heads);
  }
  if (cfg.layer_nsa(layer)) add(p.nsa_gate, 3 * cfg.n_heads);
  return p;
}

int max_skinny_width(const ModelConfig& cfg) {
  int w = 0;
  for (int l = 0; l < cfg.n_layers; ++l) w = std::max(w, skinny_projections(cfg, l).width);
  return w;
}

bool is_skinny_projection(const std::string& name) {
  for (const char* part : kParts) {
    const std::string suffix = std::string(".") + part;
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  }
  return false;
}

std::vector<SkinnyRun> skinny_f32_runs(const ModelConfig& cfg, const ParamLayout& layout, int layer) {
  const SkinnyProjections p = skinny_projections(cfg, layer);
  const int H = cfg.n_heads, Hkv = cfg.kv_heads();
  const int col[] = {p.shift_k, p.shift_v, p.gate_w, p.gate_sharp, p.nsa_gate}, rows[] = {Hkv, Hkv, H, H, 3 * H};
  const std::string prefix = "layers." + std::to_string(layer) + ".";
  const size_t d = size_t(cfg.d_model);
  std::vector<SkinnyRun> runs;
  for (size_t i = 0; i < std::size(kParts); ++i) {
    if (col[i] < 0) continue;
    const size_t off = layout.get(prefix + kParts[i]).offset;
    if (!runs.empty() && runs.back().f32 + size_t(runs.back().rows) * d == off)
      runs.back().rows += rows[i];
    else
      runs.push_back({col[i], rows[i], off});
  }
  return runs;
}

}  // namespace gfwa
