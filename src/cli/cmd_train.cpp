#include <cstdio>
#include <filesystem>

#include <cxxopts.hpp>

#include "cli/commands.h"
#include "train/config_cli.h"
#include "train/trainer.h"

namespace gfwa {

int cmd_train(int argc, char** argv) {
  cxxopts::Options options("gfwa train", "Train a model from a JSON config (docs/training.md).");
  add_config_options(options);
  options.add_options()
      ("resume", "auto (newest valid checkpoint in the output directory, if any) or a checkpoint path",
       cxxopts::value<std::string>(), "auto|PATH")
      ("out", "output directory (default: runs/<config file stem>)", cxxopts::value<std::string>(), "DIR")
      ("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s\nexit status: 0 done, 75 stopped by a signal after writing a checkpoint (resume with\n"
                "--resume auto), 74 stopped on a shard that could not be read (checkpoint written; fix the\n"
                "shard, then resume), 130 a second signal, 2 an error.\n", options.help().c_str());
    return 0;
  }
  if (!parsed.unmatched().empty()) throw std::runtime_error("unexpected argument '" + parsed.unmatched()[0] + "'");
  const RunConfig cfg = load_config_from_cli(parsed);
  TrainOptions opt;
  if (parsed.count("out")) {
    opt.out_dir = parsed["out"].as<std::string>();
  } else {
    const std::string stem =
        parsed.count("config") ? std::filesystem::path(parsed["config"].as<std::string>()).stem().string() : "default";
    opt.out_dir = "runs/" + stem;
  }
  if (parsed.count("resume")) opt.resume = parsed["resume"].as<std::string>();
  return train(cfg, opt);
}

}  // namespace gfwa
