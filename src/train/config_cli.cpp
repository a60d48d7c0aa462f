#include "train/config_cli.h"

#include "train/config_io.h"

namespace gfwa {

void add_config_options(cxxopts::Options& options) {
  options.add_options("config")
      ("config", "JSON config file (keys: docs/config.md); without it, the defaults", cxxopts::value<std::string>(), "FILE")
      ("set", "override one key, e.g. --set model.attention.window=256 (repeatable)",
       cxxopts::value<std::vector<std::string>>(), "KEY=VALUE");
}

RunConfig load_config_from_cli(const cxxopts::ParseResult& parsed) {
  if (parsed.count("config") > 1)
    throw ConfigError("--config is given " + std::to_string(parsed.count("config")) +
                      " times: give one file (and --set to change keys)");
  const std::string path = parsed.count("config") ? parsed["config"].as<std::string>() : std::string();
  // The vector value of --set is split at commas by cxxopts; the raw arguments are not.
  std::vector<std::string> overrides;
  for (const auto& kv : parsed.arguments())
    if (kv.key() == "set") overrides.push_back(kv.value());
  return load_config(path, overrides);
}

}  // namespace gfwa
