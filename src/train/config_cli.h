// The --config FILE and repeated --set key.path=value options, shared by every subcommand that
// takes a run configuration.
#pragma once
#include <cxxopts.hpp>

#include "train/config.h"

namespace gfwa {

void add_config_options(cxxopts::Options& options);

// load_config() with the parsed options; --set values are taken verbatim (commas included).
RunConfig load_config_from_cli(const cxxopts::ParseResult& parsed);

}  // namespace gfwa
