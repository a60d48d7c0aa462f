// Parameters for model-level parity tests: the documented init, then noise on the tensors it
// leaves constant (norm weights, gate and shift vectors), so every path carries signal.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "model/cpu_backend.h"

namespace gfwa::test {

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

}  // namespace gfwa::test
