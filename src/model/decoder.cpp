#include "model/decoder.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace gfwa {
namespace {

void check_token(int32_t id, int vocab, const std::string& where) {
  if (id < 0 || id >= vocab)
    throw std::invalid_argument("decoder: token id " + std::to_string(id) + " " + where + " outside [0, " +
                                std::to_string(vocab) + ")");
}

}  // namespace

std::string decoder_support_problem(const ModelConfig& cfg) {
  const std::string nsa = cfg.first_nsa_layer_text();
  if (nsa.empty()) return "";
  return nsa + ", which has no incremental decoding (generation) yet: use a model without nsa layers, or score " +
         "text with gfwa eval";
}

int64_t decoder_max_length(const ModelConfig& cfg, int64_t max_length) {
  const std::string problem = decoder_support_problem(cfg);
  if (!problem.empty()) throw std::invalid_argument("decoder: " + problem);
  if (!cfg.any_full()) return std::numeric_limits<int64_t>::max();
  if (max_length < 1 || max_length > std::numeric_limits<int>::max())
    throw std::invalid_argument("decoder: full attention needs a max_length in [1, 2^31) (got " +
                                std::to_string(max_length) + ")");
  return max_length;
}

std::vector<int> decoder_cache_caps(const ModelConfig& cfg, int64_t max_length) {
  const int64_t bound = decoder_max_length(cfg, max_length);
  std::vector<int> caps;
  for (int l = 0; l < cfg.n_layers; ++l) {
    const LayerAttention a = cfg.layer_attention(l);
    caps.push_back(int(a.mode == AttnMode::full ? bound : std::min<int64_t>(a.window, bound)));
  }
  return caps;
}

void Decoder::greedy(int limit, int32_t* ids) {
  const std::vector<float>& l = logits();
  for (int b = 0; b < batch_; ++b) {
    const float* row = &l[size_t(b) * size_t(vocab_)];
    int32_t best = 0;
    for (int32_t i = 1; i < limit; ++i)
      if (row[i] > row[best]) best = i;
    ids[b] = best;
  }
}

void Decoder::check_prefill(int b, const int32_t* tokens, int n) const {
  if (b < 0 || b >= batch_)
    throw std::invalid_argument("decoder: slot " + std::to_string(b) + " outside the batch of " +
                                std::to_string(batch_));
  if (n < 1) throw std::invalid_argument("decoder: prefill of slot " + std::to_string(b) + " needs >= 1 token");
  if (n > max_length_)
    throw std::invalid_argument("decoder: prompt of " + std::to_string(n) + " tokens exceeds the " +
                                std::to_string(max_length_) + "-token cache of full attention");
  for (int i = 0; i < n; ++i) check_token(tokens[i], vocab_, "at prompt position " + std::to_string(i));
}

void Decoder::check_step(const int32_t* tokens) const {
  for (int b = 0; b < batch_; ++b) {
    if (pos_[size_t(b)] < 1)
      throw std::invalid_argument("decoder: step before the prefill of slot " + std::to_string(b));
    if (pos_[size_t(b)] >= max_length_)
      throw std::invalid_argument("decoder: slot " + std::to_string(b) + " holds " +
                                  std::to_string(pos_[size_t(b)]) + " tokens, the full-attention cache's " +
                                  "limit");
    check_token(tokens[b], vocab_, "of slot " + std::to_string(b));
  }
}

}  // namespace gfwa
