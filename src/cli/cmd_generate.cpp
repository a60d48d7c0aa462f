#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "data/tokenizer.h"
#include "infer/generate.h"
#include "infer/prompts.h"
#include "model/backend_factory.h"
#include "model/decoder.h"
#include "train/checkpoint.h"
#include "train/config_io.h"

namespace gfwa {
namespace {

// The positions a full-attention model may be asked for: what it was trained on unless the user
// raises it (RoPE past the training length is extrapolation).
int64_t full_attention_limit(const cxxopts::ParseResult& parsed, const RunConfig& cfg) {
  if (!parsed.count("context-limit")) return cfg.train.seq_len;
  const int64_t v = parsed["context-limit"].as<int64_t>();
  if (v < 1) throw std::runtime_error("--context-limit must be >= 1 (got " + std::to_string(v) + ")");
  return v;
}

std::string mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", double(bytes) / double(1 << 20));
  return buf;
}

}  // namespace

int cmd_generate(int argc, char** argv) {
  cxxopts::Options options("gfwa generate",
                           "Continues prompts with a saved model through its O(W) cache (docs/generate.md).\n"
                           "One prompt streams its text to stdout; several print one JSON line each, in order.");
  options.add_options()
      ("checkpoint", "a checkpoint directory (step_*)", cxxopts::value<std::string>(), "PATH")
      ("prompt", "the prompt text (default: all of standard input)", cxxopts::value<std::string>(), "TEXT")
      ("prompt-file", "one prompt per line; a .jsonl file: one {\"prompt\": ...} object per line",
       cxxopts::value<std::string>(), "FILE")
      ("max-new-tokens", "tokens to generate per prompt", cxxopts::value<int>()->default_value("256"), "N")
      ("temperature", "softmax temperature; 0: greedy", cxxopts::value<float>()->default_value("1.0"), "T")
      ("top-k", "draw from the k most likely tokens; 0: all", cxxopts::value<int>()->default_value("0"), "K")
      ("top-p", "draw from the smallest set of most likely tokens holding probability p",
       cxxopts::value<float>()->default_value("1.0"), "P")
      ("seed", "random seed (same seed, same text on the same backend)",
       cxxopts::value<uint64_t>()->default_value("1337"), "N")
      ("stop-at-eot", "end a sequence when it draws <|endoftext|>")
      ("backend", "auto | cpu | cuda", cxxopts::value<std::string>()->default_value("auto"), "NAME")
      ("batch-size", "sequences decoded together", cxxopts::value<int>()->default_value("64"), "N")
      ("context-limit", "full attention only: most positions per sequence (default: the checkpoint's "
       "train.seq_len)", cxxopts::value<int64_t>(), "N")
      ("tokenizer", "tokenizer folder (default: the checkpoint's data.tokenizer)", cxxopts::value<std::string>(),
       "DIR")
      ("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  if (!parsed.count("checkpoint")) throw std::runtime_error("--checkpoint PATH is required");
  if (parsed.count("prompt") && parsed.count("prompt-file"))
    throw std::runtime_error("--prompt and --prompt-file exclude each other");
  spdlog::set_level(spdlog::level::warn);  // backend notes stay quiet beside the text

  GenerateOptions go;
  go.max_new_tokens = parsed["max-new-tokens"].as<int>();
  go.sampling.temperature = parsed["temperature"].as<float>();
  go.sampling.top_k = parsed["top-k"].as<int>();
  go.sampling.top_p = parsed["top-p"].as<float>();
  go.seed = parsed["seed"].as<uint64_t>();
  go.stop_at_eot = parsed.count("stop-at-eot") > 0;
  go.eot = Tokenizer::kEndOfText;
  const std::string problem = sampling_problem(go.sampling);
  if (!problem.empty()) throw std::runtime_error(problem);
  if (go.max_new_tokens < 1)
    throw std::runtime_error("--max-new-tokens must be >= 1 (got " + std::to_string(go.max_new_tokens) + ")");
  const int batch_size = parsed["batch-size"].as<int>();
  if (batch_size < 1) throw std::runtime_error("--batch-size must be >= 1 (got " + std::to_string(batch_size) + ")");

  std::vector<std::string> texts;
  if (parsed.count("prompt")) {
    texts.push_back(parsed["prompt"].as<std::string>());
    check_prompt_utf8(texts.back(), "--prompt");
  } else if (parsed.count("prompt-file")) {
    texts = read_prompt_file(parsed["prompt-file"].as<std::string>());
    if (texts.empty()) throw std::runtime_error(parsed["prompt-file"].as<std::string>() + ": no prompts");
  } else {
    texts.push_back(read_prompt_stream(std::cin, "standard input"));
  }

  const std::string dir = parsed["checkpoint"].as<std::string>();
  const CheckpointData ck = load_checkpoint(dir);
  const RunConfig cfg = config_from_json(ck.config, dir + "/config.json");
  const std::string undecodable = decoder_support_problem(cfg.model);
  if (!undecodable.empty()) throw std::runtime_error("gfwa generate: " + dir + ": " + undecodable);
  const Tokenizer tok(parsed.count("tokenizer") ? parsed["tokenizer"].as<std::string>() : cfg.data.tokenizer);
  go.sampling.vocab_limit = tok.vocab_size();
  std::vector<std::vector<int32_t>> prompts;
  size_t longest = 1;
  for (const std::string& t : texts) {
    prompts.push_back(tok.encode_with_special(t));
    if (prompts.back().empty()) prompts.back().push_back(Tokenizer::kEndOfText);  // an empty prompt
    longest = std::max(longest, prompts.back().size());
  }
  const bool full = cfg.model.any_full();  // some layer's cache holds every token
  const int64_t max_length = int64_t(longest) + go.max_new_tokens;
  if (full) {
    const int64_t limit = full_attention_limit(parsed, cfg);
    for (size_t i = 0; i < prompts.size(); ++i)
      if (int64_t(prompts[i].size()) + go.max_new_tokens > limit)
        throw std::runtime_error("prompt " + std::to_string(i + 1) + " has " + std::to_string(prompts[i].size()) +
                                 " tokens: with --max-new-tokens " + std::to_string(go.max_new_tokens) +
                                 " it needs more than the " + std::to_string(limit) +
                                 " positions of this full-attention model (train.seq_len, or --context-limit)");
  }

  BackendSpec spec;
  spec.kind = resolve_backend_name(parsed["backend"].as<std::string>());
  spec.model = cfg.model;
  spec.max_batch = 1;
  // The cuda decoder prefills a prompt with the training forward, sized here; the cpu one needs no buffers.
  spec.max_len = spec.kind == "cuda" ? int(longest) : 1;
  auto backend = make_backend(spec);
  backend->set_params(ck.params);
  auto dec = backend->make_decoder(int(std::min<size_t>(prompts.size(), size_t(batch_size))), max_length);

  // One prompt: its text as it comes. Several: a JSON line per prompt, in prompt order.
  const bool stream = prompts.size() == 1;
  std::vector<std::vector<int32_t>> made(prompts.size());
  std::vector<char> done(prompts.size(), 0);
  size_t next_out = 0;
  auto on_token = [&](int i, int32_t id) {
    if (!stream) {
      made[size_t(i)].push_back(id);
      return;
    }
    const std::string_view bytes = tok.token_bytes(id);
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
  };
  auto on_done = [&](int i) {
    done[size_t(i)] = 1;
    if (stream) {
      std::fputc('\n', stdout);
      return;
    }
    for (; next_out < prompts.size() && done[next_out]; ++next_out) {
      const nlohmann::json line = {{"index", next_out}, {"prompt", texts[next_out]},
                                   {"completion", tok.decode(made[next_out])}};
      // A completion may stop inside a multi-byte character: such bytes print as U+FFFD.
      std::printf("%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      std::fflush(stdout);
    }
  };
  const GenerateStats st = generate(*dec, prompts, go, on_token, on_done);
  const bool uniform = cfg.model.attention.pattern.empty();
  const std::string held = full ? (uniform ? "" : "full layers: ") + std::string("every token, up to ") + std::to_string(max_length)
                                : uniform ? "the last " + std::to_string(cfg.model.attention.window) + " tokens"
                                          : "the last W tokens of each layer";
  std::fprintf(stderr,
               "generate: %zu prompt(s), %lld prompt tokens, %lld new | prefill %.3f s (%.0f tokens/s) | "
               "first token %.3f s | decode %.1f tokens/s (batch %d) | cache %s (%s, %s, %s)\n",
               prompts.size(), (long long)st.prompt_tokens, (long long)st.new_tokens, st.prefill_s,
               double(st.prompt_tokens) / std::max(st.prefill_s, 1e-9), st.first_token_s,
               double(st.decode_tokens) / std::max(st.decode_s, 1e-9), dec->batch(), mib(st.cache_bytes).c_str(),
               backend->name().c_str(),
               uniform ? attn_mode_name(cfg.model.attention.mode) : attention_pattern_text(cfg.model).c_str(),
               held.c_str());
  return 0;
}

}  // namespace gfwa
