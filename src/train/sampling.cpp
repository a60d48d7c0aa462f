#include "train/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace gfwa {

std::string sampling_problem(const SamplingOptions& o) {
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature))
    return "--temperature must be a finite number >= 0 (got " + std::to_string(o.temperature) + ")";
  if (o.top_k < 0) return "--top-k must be >= 0 (got " + std::to_string(o.top_k) + ")";
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) return "--top-p must be in (0, 1] (got " + std::to_string(o.top_p) + ")";
  return "";
}

int32_t sample_token(const float* logits, int vocab, const SamplingOptions& o, std::mt19937_64& rng) {
  const int V = o.vocab_limit > 0 ? std::min(o.vocab_limit, vocab) : vocab;
  auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (o.temperature == 0.0f) {
    int32_t best = 0;
    for (int32_t i = 1; i < V; ++i)
      if (before(i, best)) best = i;
    return best;
  }
  const double inv_t = 1.0 / double(o.temperature);
  std::vector<int32_t> ids(static_cast<size_t>(V));
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<double> probs;
  // The k most likely ids, in rank order; with top-p, k doubles until the nucleus fits inside.
  int k = o.top_k > 0 ? std::min(o.top_k, V) : V;
  const bool nucleus = o.top_p < 1.0f;
  int ranked = nucleus ? std::min(k, 64) : k;
  double total = 0.0;  // unnormalised mass of all V ids (top-p only)
  int32_t top = ids[0];
  for (int32_t i = 1; i < V; ++i)
    if (before(i, top)) top = i;
  if (nucleus)
    for (int i = 0; i < V; ++i) total += std::exp((double(logits[i]) - double(logits[top])) * inv_t);
  for (;;) {
    std::partial_sort(ids.begin(), ids.begin() + ranked, ids.end(), before);
    probs.resize(size_t(ranked));
    double sum = 0.0;
    int keep = ranked;
    for (int j = 0; j < ranked; ++j) {
      sum += probs[size_t(j)] = std::exp((double(logits[ids[size_t(j)]]) - double(logits[ids[0]])) * inv_t);
      if (nucleus && sum >= double(o.top_p) * total) {
        keep = j + 1;
        break;
      }
    }
    if (!nucleus || keep < ranked || ranked == k) {
      probs.resize(size_t(keep));  // sum is their total: the loop stops right after the last kept id
      // A uniform draw from 53 random bits: the same stream on every standard library.
      double u = double(rng() >> 11) * 0x1.0p-53 * sum;
      int pick = 0;
      while (pick + 1 < keep && u >= probs[size_t(pick)]) u -= probs[size_t(pick++)];
      return ids[size_t(pick)];
    }
    ranked = std::min(k, 2 * ranked);
  }
}

}  // namespace gfwa
