#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "model/safetensors.h"

namespace gfwa {

EvalResult evaluate(Backend& backend, ValLoader& val, int B, int T, int max_batches) {
  val.reset();
  std::vector<int32_t> in, tgt;
  double loss_sum = 0;
  int batches = 0;
  while ((max_batches == 0 || batches < max_batches) && val.next(in, tgt)) {
    loss_sum += backend.forward_loss(in.data(), tgt.data(), B, T);
    ++batches;
  }
  return eval_result(batches ? loss_sum / batches : 0.0, batches, int64_t(batches) * B * T, val);
}

EvalResult eval_result(double loss, int batches, int64_t tokens, const ValLoader& val) {
  if (batches == 0) throw std::runtime_error("evaluation: the validation split holds less than one batch");
  EvalResult r;
  r.batches = batches;
  r.tokens = tokens;
  r.loss = loss;
  r.perplexity = std::exp(r.loss);
  const int64_t bytes = val.total_utf8_bytes();
  r.bits_per_byte = bytes > 0 ? r.loss * double(val.total_tokens()) / (double(bytes) * std::log(2.0))
                              : std::numeric_limits<double>::quiet_NaN();
  return r;
}

void write_batch_logits(Backend& backend, const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets,
                        int B, int T, const std::string& path) {
  std::vector<float> all, row;
  for (int b = 0; b < B; ++b)
    for (int t = 1; t <= T; ++t) {
      backend.last_logits(inputs.data() + size_t(b) * T, t, row);
      all.insert(all.end(), row.begin(), row.end());
    }
  const int64_t V = int64_t(row.size());
  write_safetensors(path,
                    {{"input_ids", "I32", {B, T}, inputs.data(), inputs.size() * sizeof(int32_t)},
                     {"targets", "I32", {B, T}, targets.data(), targets.size() * sizeof(int32_t)},
                     {"logits", "F32", {B, T, V}, all.data(), all.size() * sizeof(float)}},
                    {});
}

nlohmann::json eval_result_json(const EvalResult& r) {
  return {{"loss", r.loss},
          {"perplexity", r.perplexity},
          {"bits_per_byte", std::isnan(r.bits_per_byte) ? nlohmann::json() : nlohmann::json(r.bits_per_byte)},
          {"tokens", r.tokens},
          {"batches", r.batches}};
}

std::vector<int32_t> sample_tokens(Backend& backend, const std::vector<int32_t>& prompt, int n, int max_T,
                                   int vocab_limit, int top_k, std::mt19937_64& rng) {
  std::vector<int32_t> seq = prompt;
  std::vector<float> logits;
  std::vector<int32_t> ids;
  std::vector<double> probs;
  for (int i = 0; i < n; ++i) {
    const int T = std::min<int>(int(seq.size()), max_T);
    backend.last_logits(seq.data() + seq.size() - T, T, logits);
    const int V = std::min<int>(vocab_limit, int(logits.size()));
    const int k = std::max(1, std::min(top_k, V));
    ids.resize(size_t(V));
    std::iota(ids.begin(), ids.end(), 0);
    // Ties broken by id so the choice does not depend on the sort implementation.
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    probs.resize(size_t(k));
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += probs[size_t(j)] = std::exp(double(logits[size_t(ids[size_t(j)])] - logits[size_t(ids[0])]));
    // A uniform draw from 53 random bits: the same stream on every standard library.
    double u = double(rng() >> 11) * 0x1.0p-53 * sum;
    int pick = 0;
    while (pick + 1 < k && u >= probs[size_t(pick)]) u -= probs[size_t(pick++)];
    seq.push_back(ids[size_t(pick)]);
  }
  return std::vector<int32_t>(seq.begin() + long(prompt.size()), seq.end());
}

}  // namespace gfwa
