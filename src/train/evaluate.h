// Validation loss, perplexity and bits per byte, and text samples from the model.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

// {loss, perplexity, bits_per_byte (null when unknown), tokens, batches}
nlohmann::json eval_result_json(const EvalResult& r);

// Writes a safetensors file (atomically) with "input_ids" and "targets" (I32 [B, T]) and "logits"
// (F32 [B, T, vocab]): the backend's logits of every position of the batch, each from the
// backend's last-position logits of its prefix (causal: the same values; B*T forwards, so meant
// for small models, e.g. checking another implementation against ours: docs/interop.md).
void write_batch_logits(Backend& backend, const std::vector<int32_t>& inputs, const std::vector<int32_t>& targets,
                        int B, int T, const std::string& path);

// Continues `prompt` by n tokens, drawing each from the top_k most likely ids below vocab_limit
// (top_k 1: greedy). The context is the last max_T tokens. Deterministic in rng.
std::vector<int32_t> sample_tokens(Backend& backend, const std::vector<int32_t>& prompt, int n, int max_T,
                                   int vocab_limit, int top_k, std::mt19937_64& rng);

}  // namespace gfwa
