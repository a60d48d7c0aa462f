// The generation loop of `gfwa generate` (docs/generate.md): prompts are prefilled into the slots of
// a Decoder, then every step appends one sampled token per sequence. Sequence i draws from its own
// random stream, seeded by (seed, i): the same seed gives the same text on the same backend.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/decoder.h"
#include "train/sampling.h"

namespace gfwa {

struct GenerateOptions {
  int max_new_tokens = 256;
  SamplingOptions sampling;
  uint64_t seed = 1337;
  bool stop_at_eot = false;  // a sequence ends when it draws <|endoftext|> (not reported)
  int32_t eot = 50256;
};

struct GenerateStats {
  int64_t prompt_tokens = 0, new_tokens = 0;
  double prefill_s = 0;      // prompts into the caches, first logits included
  double first_token_s = 0;  // from the start to the first generated token
  double decode_s = 0;       // the steps after the first token (each makes one token per sequence)
  int64_t decode_tokens = 0; // tokens made by those steps
  int64_t cache_bytes = 0;   // the decoder's cache
};

// Generates for prompts (token ids; each non-empty) in groups of dec.batch() sequences.
// on_token(i, id) is called for each new token of sequence i as soon as it is drawn;
// on_done(i) once sequence i ended.
GenerateStats generate(Decoder& dec, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                       const std::function<void(int, int32_t)>& on_token, const std::function<void(int)>& on_done);

}  // namespace gfwa
