// What the GatedFWA gates learned (the paper's "learned gating behaviour"), per layer and head,
// over evaluated text: the distribution of the decay alpha = -log f, and the effective memory
// length, the distance n = i - j at which the accumulated bias -(alpha[j+1] + ... + alpha[i])
// between query i and key j first reaches -1 and -5 (gatedfwa.md section 2). A query whose bias
// never gets there within its sequence (memory longer than the context it has) counts as
// "not reached": quantiles treat it as infinite and are null when they fall among those.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace gfwa {

class GateStats {
 public:
  static constexpr double kThresholds[2] = {1.0, 5.0};

  GateStats(int layers, int heads, int T);
  // logf[layer] is [B, T, H] (Backend::gate_log_f), or empty for a layer without gates, which then
  // has no entries in to_json. Position 0 of each sequence has no earlier key, so its memory length
  // is not counted; its alpha is.
  void add(const std::vector<std::vector<float>>& logf, int B);
  // {thresholds, layers, heads, seq_len, alpha_log10_edges, heads_stats: [{layer, head, alpha_mean,
  //  alpha_p10, alpha_p50, alpha_p90, alpha_histogram, memory: [{threshold, median, p90, reached}]}]}
  nlohmann::json to_json() const;

 private:
  struct Head {
    double alpha_sum = 0;
    int64_t alpha_count = 0;
    std::vector<int64_t> alpha_bins;                // fine log10 bins (kFineBins), clamped at both ends
    std::vector<std::vector<int64_t>> memory;       // per threshold: counts of n in [0, T), then "not reached" at T
  };
  int layers_, heads_, T_;
  std::vector<Head> stats_;  // layer-major
};

}  // namespace gfwa
