// ModelConfig's per-layer attention: model.attention.pattern resolved against the model's layers.
#include "model/model_config.h"

#include <stdexcept>

namespace gfwa {

std::string attention_pattern_problem(const ModelConfig& cfg) {
  const AttentionPattern& p = cfg.attention.pattern;
  if (!p.letters.empty() && !p.layers.empty()) return "give letters or a list of layers, not both";
  if (!p.letters.empty()) {
    for (size_t i = 0; i < p.letters.size(); ++i)
      if (p.letters[i] != 'S' && p.letters[i] != 'L')
        return "letter '" + std::string(1, p.letters[i]) + "' at position " + std::to_string(i + 1) + " of \"" +
               p.letters + "\" is neither S (model.attention.mode with model.attention.window) nor L (full attention)";
    if (cfg.n_layers % int(p.letters.size()) != 0)
      return "\"" + p.letters + "\" has " + std::to_string(p.letters.size()) + " letters, which do not tile model.n_layers " +
             std::to_string(cfg.n_layers) +
             " (the letters repeat over the layers: give a length that divides it, or a list of " +
             std::to_string(cfg.n_layers) + " layers)";
    return "";
  }
  if (!p.layers.empty() && int(p.layers.size()) != cfg.n_layers)
    return "lists " + std::to_string(p.layers.size()) + " layers, the model has model.n_layers " +
           std::to_string(cfg.n_layers);
  for (size_t i = 0; i < p.layers.size(); ++i)
    if (p.layers[i].window < 0)
      return "layer " + std::to_string(i) + ": window must be >= 1 (got " + std::to_string(p.layers[i].window) + ")";
  return "";
}

LayerAttention ModelConfig::layer_attention(int l) const {
  if (l < 0 || l >= n_layers)
    throw std::invalid_argument("layer_attention: layer " + std::to_string(l) + " outside [0, " +
                                std::to_string(n_layers) + ")");
  const AttentionPattern& p = attention.pattern;
  const LayerAttention configured{attention.mode, attention.window};
  if (p.empty()) return configured;
  const std::string problem = attention_pattern_problem(*this);
  if (!problem.empty()) throw std::invalid_argument("model.attention.pattern: " + problem);
  if (!p.letters.empty())
    return p.letters[size_t(l) % p.letters.size()] == 'S' ? configured : LayerAttention{AttnMode::full, attention.window};
  LayerAttention a = p.layers[size_t(l)];
  if (a.window == 0) a.window = attention.window;
  return a;
}

bool ModelConfig::layer_gated(int l) const {
  const AttnMode m = layer_attention(l).mode;
  return m == AttnMode::gatedfwa || (m == AttnMode::nsa && attention.nsa.sliding == AttnMode::gatedfwa);
}

bool ModelConfig::any_nsa() const { return !first_nsa_layer_text().empty(); }

std::string ModelConfig::first_nsa_layer_text() const {
  for (int l = 0; l < n_layers; ++l)
    if (layer_nsa(l)) return "layer " + std::to_string(l) + " has model.attention.mode nsa";
  return "";
}

NsaShape ModelConfig::nsa_shape(int l, int B, int T) const {
  return NsaShape{B, T, n_heads, kv_heads(), head_dim(), attention.nsa.block, attention.nsa.top_k,
                  layer_attention(l).window};
}

std::string nsa_config_problem(const ModelConfig& cfg) {
  if (!cfg.any_nsa()) return "";
  const NsaConfig& n = cfg.attention.nsa;
  if (n.sliding != AttnMode::swa && n.sliding != AttnMode::gatedfwa)
    return std::string("model.attention.nsa.sliding: the sliding branch must be swa or gatedfwa (got ") +
           attn_mode_name(n.sliding) + ")";
  if (n.block < 1) return "model.attention.nsa.block: must be >= 1 (got " + std::to_string(n.block) + ")";
  if (n.top_k < 1) return "model.attention.nsa.top_k: must be >= 1 (got " + std::to_string(n.top_k) + ")";
  return "";
}

bool ModelConfig::any_gated() const {
  for (int l = 0; l < n_layers; ++l)
    if (layer_gated(l)) return true;
  return false;
}

bool ModelConfig::any_full() const {
  for (int l = 0; l < n_layers; ++l)
    if (layer_attention(l).mode == AttnMode::full) return true;
  return false;
}

std::string attention_pattern_text(const ModelConfig& cfg) {
  auto one = [](const LayerAttention& a) {
    return std::string(attn_mode_name(a.mode)) + (a.mode == AttnMode::full ? "" : ":" + std::to_string(a.window));
  };
  if (cfg.attention.pattern.empty()) return one({cfg.attention.mode, cfg.attention.window});
  std::string out;
  for (int l = 0; l < cfg.n_layers;) {
    const LayerAttention a = cfg.layer_attention(l);
    int run = 1;
    while (l + run < cfg.n_layers && cfg.layer_attention(l + run) == a) ++run;
    out += (l == 0 ? "" : ",") + one(a) + (run > 1 ? "x" + std::to_string(run) : "");
    l += run;
  }
  return out;
}

}  // namespace gfwa
