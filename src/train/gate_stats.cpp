#include "train/gate_stats.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gfwa {
namespace {

// alpha histogram: log10(alpha) in [kLogMin, kLogMax), 48 bins per decade (quantiles to within
// 2.4%); reported merged 12 to 1 (4 per decade). Smaller and larger values go to the end bins.
constexpr int kLogMin = -8, kLogMax = 4, kFinePerDecade = 48, kMerge = 12;
constexpr int kFineBins = (kLogMax - kLogMin) * kFinePerDecade;

int alpha_bin(double alpha) {
  if (!(alpha > 0)) return 0;
  const double x = (std::log10(alpha) - kLogMin) * kFinePerDecade;
  return int(std::clamp(std::floor(x), 0.0, double(kFineBins - 1)));
}

// Geometric centre of the fine bin holding the q-quantile.
double alpha_quantile(const std::vector<int64_t>& bins, int64_t count, double q) {
  const double want = q * double(count);
  int64_t run = 0;
  for (int b = 0; b < kFineBins; ++b) {
    run += bins[size_t(b)];
    if (double(run) >= want && run > 0) return std::pow(10.0, kLogMin + (b + 0.5) / kFinePerDecade);
  }
  return std::pow(10.0, kLogMax);
}

// The q-quantile of n over counts[0..T) plus counts[T] "not reached" (sorted last); null there.
nlohmann::json memory_quantile(const std::vector<int64_t>& counts, double q) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  const double want = q * double(total);
  int64_t run = 0;
  for (size_t n = 0; n + 1 < counts.size(); ++n) {
    run += counts[n];
    if (double(run) >= want && run > 0) return int64_t(n);
  }
  return nullptr;
}

}  // namespace

GateStats::GateStats(int layers, int heads, int T) : layers_(layers), heads_(heads), T_(T) {
  if (layers < 1 || heads < 1 || T < 1)
    throw std::invalid_argument("GateStats: layers, heads and T must be >= 1");
  Head h;
  h.alpha_bins.assign(kFineBins, 0);
  h.memory.assign(std::size(kThresholds), std::vector<int64_t>(size_t(T) + 1, 0));
  stats_.assign(size_t(layers) * heads, h);
}

void GateStats::add(const std::vector<std::vector<float>>& logf, int B) {
  const size_t per_layer = size_t(B) * T_ * heads_;
  if (int(logf.size()) != layers_)
    throw std::invalid_argument("GateStats::add: expected " + std::to_string(layers_) + " layers");
  std::vector<double> alpha(static_cast<size_t>(T_));
  for (int l = 0; l < layers_; ++l) {
    if (logf[size_t(l)].empty()) continue;  // a layer without gates (model.attention.pattern)
    if (logf[size_t(l)].size() != per_layer)
      throw std::invalid_argument("GateStats::add: layer " + std::to_string(l) + " has " +
                                  std::to_string(logf[size_t(l)].size()) + " values, expected " +
                                  std::to_string(per_layer));
    for (int h = 0; h < heads_; ++h) {
      Head& st = stats_[size_t(l) * heads_ + h];
      for (int b = 0; b < B; ++b) {
        for (int t = 0; t < T_; ++t) {
          alpha[size_t(t)] = -double(logf[size_t(l)][(size_t(b) * T_ + t) * heads_ + h]);
          st.alpha_sum += alpha[size_t(t)];
          ++st.alpha_bins[size_t(alpha_bin(alpha[size_t(t)]))];
        }
        st.alpha_count += T_;
        // Per query i, the smallest n with alpha[i-n+1] + ... + alpha[i] >= c: the sum's start s
        // only moves right as i grows (alpha >= 0), so one pass per threshold. The sum may not
        // include alpha[0] (key j = s - 1 must exist).
        for (size_t k = 0; k < std::size(kThresholds); ++k) {
          const double c = kThresholds[k];
          double sum = 0;
          int s = 1;
          for (int i = 1; i < T_; ++i) {
            sum += alpha[size_t(i)];
            while (s < i && sum - alpha[size_t(s)] >= c) sum -= alpha[size_t(s++)];
            ++st.memory[k][sum >= c ? size_t(i - s + 1) : size_t(T_)];
          }
        }
      }
    }
  }
}

nlohmann::json GateStats::to_json() const {
  nlohmann::json edges = nlohmann::json::array();
  for (int e = 0; e <= kFineBins / kMerge; ++e) edges.push_back(kLogMin + double(e * kMerge) / kFinePerDecade);
  nlohmann::json heads = nlohmann::json::array();
  for (int l = 0; l < layers_; ++l)
    for (int h = 0; h < heads_; ++h) {
      const Head& st = stats_[size_t(l) * heads_ + h];
      if (st.alpha_count == 0) continue;  // no gates in this layer
      nlohmann::json hist = nlohmann::json::array();
      for (int b = 0; b < kFineBins; b += kMerge) {
        int64_t c = 0;
        for (int k = 0; k < kMerge; ++k) c += st.alpha_bins[size_t(b + k)];
        hist.push_back(c);
      }
      nlohmann::json memory = nlohmann::json::array();
      for (size_t k = 0; k < std::size(kThresholds); ++k) {
        int64_t total = 0;
        for (int64_t c : st.memory[k]) total += c;
        const double reached = total ? 1.0 - double(st.memory[k][size_t(T_)]) / double(total) : 0.0;
        memory.push_back({{"threshold", kThresholds[k]},
                          {"median", memory_quantile(st.memory[k], 0.5)},
                          {"p90", memory_quantile(st.memory[k], 0.9)},
                          {"reached", reached}});
      }
      const int64_t n = st.alpha_count;
      heads.push_back({{"layer", l},
                       {"head", h},
                       {"alpha_mean", st.alpha_sum / double(n)},
                       {"alpha_p10", alpha_quantile(st.alpha_bins, n, 0.1)},
                       {"alpha_p50", alpha_quantile(st.alpha_bins, n, 0.5)},
                       {"alpha_p90", alpha_quantile(st.alpha_bins, n, 0.9)},
                       {"alpha_histogram", hist},
                       {"memory", memory}});
    }
  return {{"thresholds", kThresholds},
          {"layers", layers_},
          {"heads", heads_},
          {"seq_len", T_},
          {"alpha_log10_edges", edges},
          {"heads_stats", heads}};
}

}  // namespace gfwa
