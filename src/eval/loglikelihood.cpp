#include "eval/loglikelihood.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace gfwa::eval {
namespace {

// Rows per call at most: keeps the attention grid's batch dimension far below CUDA's 65535.
constexpr int kMaxRows = 4096;
constexpr int kRowMultiple = 16;

// The tokens a request's row holds: its last max_T + 1, of which the last `scored` are targets.
struct Row {
  size_t request;
  int length;  // tokens in the row (inputs): window size - 1
  int scored;  // continuation tokens scored
};

}  // namespace

TokenRequest encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                         EncodeCache& cache) {
  TokenRequest r;
  if (context.empty()) {
    r.context.push_back(Tokenizer::kEndOfText);
    tok.encode_append(continuation, r.continuation, cache);
    return r;
  }
  const size_t keep = context.find_last_not_of(" \t\n\r\f\v") + 1;  // 0 when all whitespace
  tok.encode_append(std::string_view(context).substr(0, keep), r.context, cache);
  std::vector<int32_t> all;
  tok.encode_append(context + continuation, all, cache);
  const size_t n = std::min(r.context.size(), all.size());
  r.continuation.assign(all.begin() + long(n), all.end());
  if (r.context.empty()) r.context.push_back(Tokenizer::kEndOfText);  // an all-whitespace context
  return r;
}

LogprobSource backend_source(Backend& backend, int max_B, int max_T) {
  LogprobSource s;
  s.max_T = max_T;
  s.max_tokens = int64_t(max_B) * max_T;
  s.logprobs = [&backend](const int32_t* in, const int32_t* tgt, int B, int T, float* out) {
    backend.target_logprobs(in, tgt, B, T, out, nullptr);
  };
  return s;
}

std::vector<double> score_requests(const LogprobSource& src, const std::vector<TokenRequest>& requests) {
  if (src.max_T < 1 || src.max_tokens < src.max_T)
    throw std::invalid_argument("score_requests: need max_T >= 1 and max_tokens >= max_T");
  std::vector<double> ll(requests.size(), 0.0);
  std::vector<Row> rows;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TokenRequest& r = requests[i];
    if (r.context.empty()) throw std::invalid_argument("score_requests: request " + std::to_string(i) + " has no context");
    if (r.continuation.empty()) continue;  // log p of nothing: 0
    const size_t window = std::min(r.context.size() + r.continuation.size(), size_t(src.max_T) + 1);
    rows.push_back({i, int(window - 1), int(std::min(r.continuation.size(), window - 1))});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.length > b.length; });

  std::vector<int32_t> in, tgt;
  std::vector<float> out;
  for (size_t first = 0; first < rows.size();) {
    const int T = std::min(src.max_T, (rows[first].length + kRowMultiple - 1) / kRowMultiple * kRowMultiple);
    const int B = int(std::min<int64_t>({int64_t(rows.size() - first), src.max_tokens / T, kMaxRows}));
    in.assign(size_t(B) * T, 0);
    tgt.assign(size_t(B) * T, 0);
    for (int b = 0; b < B; ++b) {
      const Row& row = rows[first + size_t(b)];
      const TokenRequest& r = requests[row.request];
      // The row's window: the last length + 1 tokens of context + continuation.
      const size_t total = r.context.size() + r.continuation.size(), start = total - size_t(row.length) - 1;
      auto token = [&](size_t k) { return k < r.context.size() ? r.context[k] : r.continuation[k - r.context.size()]; };
      for (int t = 0; t < row.length; ++t) {
        in[size_t(b) * T + size_t(t)] = token(start + size_t(t));
        tgt[size_t(b) * T + size_t(t)] = token(start + size_t(t) + 1);
      }
    }
    out.assign(size_t(B) * T, 0.0f);
    src.logprobs(in.data(), tgt.data(), B, T, out.data());
    for (int b = 0; b < B; ++b) {
      const Row& row = rows[first + size_t(b)];
      double sum = 0.0;
      for (int t = row.length - row.scored; t < row.length; ++t) sum += double(out[size_t(b) * T + size_t(t)]);
      ll[row.request] = sum;
    }
    first += size_t(B);
  }
  return ll;
}

}  // namespace gfwa::eval
