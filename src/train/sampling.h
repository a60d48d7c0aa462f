// Drawing the next token from logits: temperature, top-k and top-p (nucleus), deterministic in the
// random stream (the training-time samples and `gfwa generate` share it; docs/generate.md).
#pragma once
#include <cstdint>
#include <random>
#include <string>

namespace gfwa {

struct SamplingOptions {
  float temperature = 1.0f;  // 0: greedy (the most likely id, lowest id on ties; draws nothing)
  int top_k = 0;             // keep the k most likely ids; 0: all
  float top_p = 1.0f;        // keep the fewest most likely ids whose probability reaches p; 1: all
  int vocab_limit = 0;       // ids >= vocab_limit are never drawn (the padded rows); 0: none
};

// "" when the options are valid, else the problem naming the option (--temperature, --top-k, --top-p).
std::string sampling_problem(const SamplingOptions& o);

// One id from logits[0..vocab). Candidates are ranked by logit, ties by lower id, so the draw does
// not depend on the sort implementation; one 53-bit uniform draw from rng per call (none when greedy).
int32_t sample_token(const float* logits, int vocab, const SamplingOptions& o, std::mt19937_64& rng);

}  // namespace gfwa
