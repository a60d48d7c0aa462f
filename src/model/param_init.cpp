#include "model/param_init.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

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
  struct Span {
    float* p;
    size_t n;
    double sd;
  };
  std::vector<Span> spans;  // the random tensors in layout order: one stream of draws
  size_t draws = 0;
  for (const ParamTensor& t : layout.tensors()) {
    const Rule r = rule_for(cfg, t.name);
    float* p = out + t.offset;
    if (r.random) {
      spans.push_back({p, t.numel, r.value});
      draws += t.numel;
    } else {
      std::fill(p, p + t.numel, float(r.value));
    }
  }
  // The same numbers as NormalRng::next() in a loop, faster: the engine's words are drawn in order on this thread,
  // and Box-Muller (log, sqrt, cos, sin: nearly all of the time, ~40 ns a draw, a minute at 1.3b parameters) runs
  // on every core, a chunk at a time.
  constexpr size_t kPairs = size_t(1) << 20;
  std::mt19937_64 engine(seed);
  std::vector<uint64_t> words(2 * kPairs);
  std::vector<double> z(2 * kPairs);
  size_t span = 0, at = 0;  // where the next draw goes
  for (size_t done = 0; done < draws;) {
    const size_t pairs = std::min(kPairs, (draws - done + 1) / 2);
    for (size_t i = 0; i < 2 * pairs; ++i) words[i] = engine();
#pragma omp parallel for schedule(static)
    for (long i = 0; i < long(pairs); ++i) box_muller(words[2 * i], words[2 * i + 1], &z[2 * i]);
    const size_t n = std::min(2 * pairs, draws - done);
    for (size_t i = 0; i < n;) {
      const Span& s = spans[span];
      const size_t m = std::min(n - i, s.n - at);
      for (size_t j = 0; j < m; ++j) s.p[at + j] = float(s.sd * z[i + j]);
      i += m;
      at += m;
      if (at == s.n) ++span, at = 0;
    }
    done += n;
  }
}

}  // namespace gfwa
