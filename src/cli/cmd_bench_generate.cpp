// `gfwa bench generate`: decode speed of the cuda backend for the model of a run configuration
// (random weights from train.seed): B random prompts of P tokens are prefilled, then N tokens each
// are generated greedily through the decoder's cache (infer/generate.h, the loop of `gfwa
// generate`). Reports prefill tokens/s, time to the first token, decode tokens/s (B tokens per
// step), the cache's bytes and the device memory in use. scripts/device/generate.sh runs it.
#ifdef GFWA_WITH_CUDA
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "cli/commands.h"
#include "infer/generate.h"
#include "model/cuda_backend.h"
#include "train/config_cli.h"
#include "train/config_io.h"

namespace gfwa {

int cmd_bench_generate(int argc, char** argv) {
  cxxopts::Options options("gfwa bench generate", "Time prefill and decode of the cuda backend on random prompts.");
  add_config_options(options);
  options.add_options()("batch", "sequences decoded together", cxxopts::value<int>()->default_value("1"), "B")(
      "prompt-len", "tokens per prompt", cxxopts::value<int>()->default_value("1024"), "P")(
      "new-tokens", "tokens generated per sequence", cxxopts::value<int>()->default_value("128"), "N")(
      "h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  if (!parsed.unmatched().empty()) throw std::runtime_error("unexpected argument '" + parsed.unmatched().front() + "'");
  const int B = parsed["batch"].as<int>(), P = parsed["prompt-len"].as<int>(), N = parsed["new-tokens"].as<int>();
  if (B < 1 || P < 1 || N < 2) throw std::invalid_argument("--batch and --prompt-len must be >= 1, --new-tokens >= 2");
  const RunConfig rc = load_config_from_cli(parsed);
  check_backend_support(rc, "cuda", parsed.count("config") ? parsed["config"].as<std::string>() : "defaults");
  const ModelConfig& mc = rc.model;

  auto be = make_cuda_backend(mc, 1, P);
  be->init_params(rc.train.seed);
  std::mt19937_64 rng(rc.train.seed);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(B), std::vector<int32_t>(static_cast<size_t>(P)));
  for (auto& p : prompts)
    for (auto& t : p) t = int32_t(rng() % 50257);
  auto dec = be->make_decoder(B, int64_t(P) + N);
  GenerateOptions go;
  go.max_new_tokens = N;
  go.sampling.temperature = 0.0f;
  go.sampling.vocab_limit = 50257;
  const GenerateStats st = generate(*dec, prompts, go, [](int, int32_t) {}, [](int) {});
  const double decode_tps = double(st.decode_tokens) / st.decode_s;
  const std::string pattern = mc.attention.pattern.empty() ? "" : " layers=" + attention_pattern_text(mc);
  std::printf("bench generate: mode=%s%s B=%d prompt=%d new=%d W=%d prefill tok/s=%.0f first_token_s=%.4f "
              "decode tok/s=%.1f step_ms=%.3f cache_MiB=%.1f mem_GiB=%.2f\n",
              attn_mode_name(mc.attention.mode), pattern.c_str(), B, P, N, mc.attention.window,
              double(st.prompt_tokens) / st.prefill_s, st.first_token_s, decode_tps, 1e3 * B / decode_tps,
              double(st.cache_bytes) / double(1 << 20), double(be->memory_in_use()) / double(1ull << 30));
  return 0;
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
