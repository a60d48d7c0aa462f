#include <cstdio>
#include <cstring>
#include <exception>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"

namespace {

const gfwa::Command kCommands[] = {
    {"config", "print the resolved configuration as JSON", gfwa::cmd_config},
    {"train", "train a model from a JSON config (resumable; docs/training.md)", gfwa::cmd_train},
    {"eval", "validation loss, perplexity and bits per byte of a checkpoint", gfwa::cmd_eval},
    {"generate", "continue prompts with a checkpoint through the O(W) cache (docs/generate.md)", gfwa::cmd_generate},
    {"export", "a checkpoint as model.safetensors + config.json (docs/interop.md)", gfwa::cmd_export},
    {"tokenize", "text files -> GPT-2 token shards (train/val)", gfwa::cmd_tokenize},
#ifdef GFWA_WITH_CUDA
    {"bench", "benchmarks: bench attention|nsa --B --H --T --D --W --mode | bench train|generate --config FILE", gfwa::cmd_bench},
#endif
};

void usage(FILE* f) {
  std::fprintf(f, "usage: gfwa <command> [options]   (gfwa <command> --help for its options)\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(f, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // Notes go to stderr, so what a command prints on stdout (eval --json, generated text) can be
  // parsed whole; `gfwa train` sets up its own log (stdout and train.log).
  spdlog::set_default_logger(spdlog::stderr_color_mt("gfwa"));
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "gfwa %s: error: %s\n", c.name, e.what());
      return 2;
    }
  }
  std::fprintf(stderr, "gfwa: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
