#include <cstdio>

#include <cxxopts.hpp>

#include "cli/commands.h"
#include "train/export.h"

namespace gfwa {

int cmd_export(int argc, char** argv) {
  cxxopts::Options options("gfwa export",
                           "A checkpoint's weights as model.safetensors + config.json (+ tokenizer) for PyTorch and "
                           "other tools (docs/interop.md).");
  options.add_options()
      ("checkpoint", "a checkpoint directory (step_*)", cxxopts::value<std::string>(), "DIR")
      ("out", "the folder to create (must not exist, or be empty)", cxxopts::value<std::string>(), "DIR")
      ("dtype", "bf16 or fp32", cxxopts::value<std::string>()->default_value("fp32"), "TYPE")
      ("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s\n", options.help().c_str());
    return 0;
  }
  if (!parsed.count("checkpoint")) throw std::runtime_error("--checkpoint DIR is required");
  if (!parsed.count("out")) throw std::runtime_error("--out DIR is required");
  WeightDtype dtype;
  try {
    dtype = parse_weight_dtype(parsed["dtype"].as<std::string>());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string("--") + e.what());
  }
  std::printf("%s\n", export_checkpoint(parsed["checkpoint"].as<std::string>(), parsed["out"].as<std::string>(), dtype)
                          .c_str());
  return 0;
}

}  // namespace gfwa
