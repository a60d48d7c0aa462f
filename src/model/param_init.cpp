#include "model/param_init.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "model/init_rng.h"

namespace gfwa {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Rule {
  bool random;
  double value;  // std when random, else the constant
};

Rule rule_for(const ModelConfig& cfg, const std::string& name) {
  const double sd = cfg.init_std;
  if (name == "embed") return {true, sd};
  if (ends_with(name, "norm")) return {false, 1.0};
  if (ends_with(name, "attn.wo") || ends_with(name, "mlp.w2")) return {true, sd / std::sqrt(2.0 * cfg.n_layers)};
  if (ends_with(name, "attn.gate_b")) return {false, cfg.attention.gate_bias_init};
  if (ends_with(name, "attn.gate_sharp") || ends_with(name, "attn.shift_k") || ends_with(name, "attn.shift_v"))
    return {false, 0.0};
  for (const char* w : {"attn.wq", "attn.wk", "attn.wv", "mlp.w1", "mlp.w3", "attn.gate_w", "attn.nsa_gate"})
    if (ends_with(name, w)) return {true, sd};
  throw std::logic_error("param_init: no initialisation rule for parameter tensor '" + name + "'");
}

}  // namespace

void init_parameters(const ModelConfig& cfg, const ParamLayout& layout, uint64_t seed, float* out) {
  NormalRng rng(seed);
  for (const ParamTensor& t : layout.tensors()) {
    const Rule r = rule_for(cfg, t.name);
    float* p = out + t.offset;
    if (r.random) {
      for (size_t i = 0; i < t.numel; ++i) p[i] = float(r.value * rng.next());
    } else {
      std::fill(p, p + t.numel, float(r.value));
    }
  }
}

}  // namespace gfwa
