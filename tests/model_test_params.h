// Shared by the model-level parity tests (cuda backend, decoders): a small model, its parameters
// and random token sequences.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "model/cpu_backend.h"

namespace gfwa::test {

// Two layers of two heads, d_model d, SwiGLU width ffn: the CPU-sized models of the unit tests.
inline ModelConfig two_layer_model(int vocab, int d, int ffn, AttnMode mode, int window, bool shift) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.n_layers = 2;
  c.d_model = d;
  c.n_heads = 2;
  c.ffn_hidden = ffn;
  c.attention.mode = mode;
  c.attention.window = window;
  c.attention.token_shift = shift;
  return c;
}

// Two layers of two heads of head_dim (64 or 128: the GPU kernels' sizes), W 24; kv_heads K/V heads
// (0: two, multi-head; 1: multi-query).
inline ModelConfig small_config(AttnMode mode, bool shift, int head_dim = 64, int kv_heads = 0) {
  ModelConfig c;
  c.vocab_size = 389;
  c.n_layers = 2;
  c.d_model = 2 * head_dim;
  c.n_heads = 2;
  c.n_kv_heads = kv_heads;
  c.ffn_hidden = 200;
  c.attention.mode = mode;
  c.attention.window = 24;
  c.attention.token_shift = shift;
  c.attention.gate_bias_init = 0.5f;
  return c;
}

// The documented init, then noise on the tensors it leaves constant (norm weights, gate and shift
// vectors), so every path carries signal.
inline std::vector<float> test_params(const ModelConfig& cfg, uint64_t seed) {
  auto cpu = make_cpu_backend(cfg, 1, 1);
  cpu->init_params(seed);
  std::vector<float> p;
  cpu->get_params(p);
  std::mt19937_64 rng(seed + 1);
  std::normal_distribution<double> n01(0.0, 1.0);
  for (const auto& t : cpu->layout().tensors()) {
    double s = 0.0;
    if (t.name.find("norm") != std::string::npos) s = 0.1;
    if (t.name.find("gate_sharp") != std::string::npos || t.name.find("shift_") != std::string::npos) s = 0.05;
    if (t.name.find("gate_b") != std::string::npos) s = 0.5;
    for (size_t i = 0; i < t.numel; ++i) p[t.offset + i] += float(s * n01(rng));
  }
  return p;
}

inline std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& v : t) v = int32_t(rng() % uint64_t(vocab));
  return t;
}

}  // namespace gfwa::test
