// Validation loss, perplexity and bits per byte, and text samples from the model.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "data/loader.h"
#include "model/backend.h"

namespace gfwa {

struct EvalResult {
  double loss = 0;           // mean cross-entropy in nats per token
  double perplexity = 0;     // exp(loss)
  double bits_per_byte = 0;  // NaN when the shards carry no UTF-8 byte count
  int64_t tokens = 0;        // tokens evaluated
  int batches = 0;
};

// Mean loss over the first max_batches [B, T] batches of the split (0: the whole split), from its
// start. bits per byte = loss * tokens / (bytes * ln 2), with the split's tokens-per-byte ratio.
EvalResult evaluate(Backend& backend, ValLoader& val, int B, int T, int max_batches);

// The result of `batches` batches of `tokens` tokens in all with mean loss `loss`: perplexity and
// bits per byte from it. Throws when batches is 0 (a split of less than one batch).
EvalResult eval_result(double loss, int batches, int64_t tokens, const ValLoader& val);

// Continues `prompt` by n tokens, drawing each from the top_k most likely ids below vocab_limit
// (top_k 1: greedy). The context is the last max_T tokens. Deterministic in rng.
std::vector<int32_t> sample_tokens(Backend& backend, const std::vector<int32_t>& prompt, int n, int max_T,
                                   int vocab_limit, int top_k, std::mt19937_64& rng);

}  // namespace gfwa
