// `gfwa config`: prints the resolved configuration (defaults < file < --set) as JSON, so users can see
// every key a preset or an override ends up with.
#include <cstdio>
#include <stdexcept>

#include "cli/commands.h"
#include "train/config_cli.h"
#include "train/config_io.h"

namespace gfwa {

int cmd_config(int argc, char** argv) {
  cxxopts::Options options("gfwa config", "Print the resolved run configuration as JSON.");
  add_config_options(options);
  options.add_options()("h,help", "show this help");
  const auto parsed = options.parse(argc, argv);
  if (parsed.count("help")) {
    std::printf("%s", options.help().c_str());
    return 0;
  }
  if (!parsed.unmatched().empty()) throw std::runtime_error("unexpected argument '" + parsed.unmatched().front() + "'");
  std::printf("%s\n", config_to_json(load_config_from_cli(parsed)).dump(2).c_str());
  return 0;
}

}  // namespace gfwa
