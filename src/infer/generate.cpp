#include "infer/generate.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>

namespace gfwa {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

GenerateStats generate(Decoder& dec, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                       const std::function<void(int, int32_t)>& on_token, const std::function<void(int)>& on_done) {
  if (o.max_new_tokens < 1)
    throw std::invalid_argument("--max-new-tokens must be >= 1 (got " + std::to_string(o.max_new_tokens) + ")");
  GenerateStats st;
  const auto t_start = std::chrono::steady_clock::now();
  const int V = dec.vocab();
  bool first = true;
  for (size_t g0 = 0; g0 < prompts.size(); g0 += size_t(dec.batch())) {
    const int n = int(std::min(prompts.size() - g0, size_t(dec.batch())));
    std::vector<std::mt19937_64> rng;
    std::vector<int32_t> last(size_t(dec.batch()), o.eot);
    std::vector<int> made(size_t(n), 0);
    std::vector<char> live(size_t(n), 1);
    int n_live = n;
    auto t0 = std::chrono::steady_clock::now();
    for (int b = 0; b < dec.batch(); ++b) {
      // Slots past the group's prompts decode a lone <|endoftext|> in step with the others.
      const std::vector<int32_t>& p = b < n ? prompts[g0 + size_t(b)] : std::vector<int32_t>{o.eot};
      dec.prefill(b, p.data(), int(p.size()));
      if (b < n) st.prompt_tokens += int64_t(p.size());
      // Sequence i's stream: a fixed function of (seed, i), whatever the batch it runs in.
      rng.emplace_back(o.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t(g0) + uint64_t(b) + 1)));
    }
    // Draws the next token of every live sequence (greedy: the decoder's argmax, no logits copied).
    std::vector<int32_t> best(static_cast<size_t>(dec.batch()));
    auto draw = [&]() {
      const bool greedy = o.sampling.temperature == 0.0f;
      if (greedy) dec.greedy(o.sampling.vocab_limit > 0 ? std::min(o.sampling.vocab_limit, V) : V, best.data());
      const float* logits = greedy ? nullptr : dec.logits().data();
      for (int b = 0; b < n; ++b) {
        if (!live[size_t(b)]) continue;
        const int32_t id =
            greedy ? best[size_t(b)] : sample_token(logits + size_t(b) * V, V, o.sampling, rng[size_t(b)]);
        last[size_t(b)] = id;
        const bool eot = o.stop_at_eot && id == o.eot;
        if (!eot) {
          on_token(int(g0) + b, id);
          ++st.new_tokens;
        }
        if (eot || ++made[size_t(b)] == o.max_new_tokens) {
          live[size_t(b)] = 0;
          --n_live;
          on_done(int(g0) + b);
        }
      }
    };
    draw();
    st.prefill_s += seconds_since(t0);
    if (first) st.first_token_s = seconds_since(t_start);
    first = false;
    t0 = std::chrono::steady_clock::now();
    const int64_t before = st.new_tokens;
    while (n_live > 0) {
      dec.step(last.data());
      draw();
    }
    st.decode_s += seconds_since(t0);
    st.decode_tokens += st.new_tokens - before;
  }
  st.cache_bytes = dec.cache_bytes();
  return st;
}

}  // namespace gfwa
