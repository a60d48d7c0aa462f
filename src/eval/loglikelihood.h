// Log-likelihood of continuations given contexts, as lm-evaluation-harness computes it, batched
// through a model's per-token log-probabilities (Backend::target_logprobs).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/backend.h"

namespace gfwa::eval {

struct TokenRequest {
  std::vector<int32_t> context;       // never empty
  std::vector<int32_t> continuation;  // the tokens whose log-probabilities are summed
};

// lm-evaluation-harness's encoding of a pair: trailing whitespace of the context moves to the
// continuation; the continuation's tokens are those of encode(context + continuation) past the
// first len(encode(context)), so a BPE merge across the boundary is scored as the model would see
// it. An empty context becomes <|endoftext|>.
TokenRequest encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                         EncodeCache& cache);

// What scoring needs from a model: rows of at most max_T tokens, at most max_tokens (B*T) a call.
struct LogprobSource {
  int max_T = 0;
  int64_t max_tokens = 0;
  std::function<void(const int32_t* inputs, const int32_t* targets, int B, int T, float* out)> logprobs;
};

// A backend sized for micro-batches of max_B x max_T (make_backend: train.batch_size x train.seq_len).
LogprobSource backend_source(Backend& backend, int max_B, int max_T);

// Sum of log p(continuation | context) for each request, in request order. A request longer than
// max_T + 1 tokens keeps its last max_T + 1 (the context is cut from the left), as lm-evaluation-
// harness does. Requests are batched longest first into [B, T] calls, T the batch's longest row
// rounded up to a multiple of 16 (fewer distinct GEMM shapes), B = max_tokens / T rows; the padding
// after a row's end is never read back (causal attention: it cannot change earlier positions).
std::vector<double> score_requests(const LogprobSource& src, const std::vector<TokenRequest>& requests);

}  // namespace gfwa::eval
