#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "model/safetensors.h"
#include "train/sampling.h"

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
  SamplingOptions o;
  o.top_k = top_k;
  o.vocab_limit = vocab_limit;
  for (int i = 0; i < n; ++i) {
    const int T = std::min<int>(int(seq.size()), max_T);
    backend.last_logits(seq.data() + seq.size() - T, T, logits);
    seq.push_back(sample_token(logits.data(), int(logits.size()), o, rng));
  }
  return std::vector<int32_t>(seq.begin() + long(prompt.size()), seq.end());
}

}  // namespace gfwa
