// `gfwa config`: prints the resolved configuration (defaults < file < --set) as JSON, so users can see
// every key a preset or an override ends up with; with --memory-plan, the cuda backend's device
// memory for it instead, computed on any machine (model/cuda_memory_plan.h).
#include <cstdio>
#include <stdexcept>
#include <string>

#include "cli/commands.h"
#include "model/cuda_memory_plan.h"
#include "train/config_cli.h"
#include "train/config_io.h"

namespace gfwa {

int cmd_config(int argc, char** argv) {
  cxxopts::Options options("gfwa config", "Print the resolved run configuration as JSON.");
  add_config_options(options);
  options.add_options()("memory-plan",
                        "print the cuda backend's memory plan for train.batch_size x train.seq_len and "
                        "train.recompute on one GPU (no ZeRO-1) instead of the JSON; needs no GPU")("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  if (!parsed.unmatched().empty()) throw std::runtime_error("unexpected argument '" + parsed.unmatched().front() + "'");
  const RunConfig cfg = load_config_from_cli(parsed);
  if (parsed.count("memory-plan")) {
    const CudaMemoryShape shape{cfg.model, cfg.train.batch_size, cfg.train.seq_len, 0, 0, cfg.optimizer.type == "muon",
                                parse_recompute(cfg.train.recompute)};
    for (const std::string& line : cuda_memory_plan_lines(shape, cuda_memory_plan(shape))) std::printf("%s\n", line.c_str());
    return 0;
  }
  std::printf("%s\n", config_to_json(cfg).dump(2).c_str());
  return 0;
}

}  // namespace gfwa
