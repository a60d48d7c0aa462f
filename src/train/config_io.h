// Loading, validating and saving a RunConfig (keys and rules: docs/config.md).
// Every error is a ConfigError whose message is one line: "<source>: <key.path>: <problem> (got <value>)",
// where <source> is the file, or "--set key=value" when the offending value came from an override.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/config.h"

namespace gfwa {

// Defaults, then the JSON file at `path` (empty: none), then each "key.path=value" override in order.
// An override value is read as JSON when it parses as JSON, else as a string; keys that hold strings
// take the text as written unless it is a quoted JSON string. The result is fully validated.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// A config file's text (as load_config reads it, without overrides); errors name source_name.
RunConfig config_from_text(const std::string& text, const std::string& source_name);

// All keys, resolved, nested like the structs. Floats are written as the shortest decimal that reads
// back to the same float, so config_from_json(config_to_json(c)) reproduces c bit for bit.
nlohmann::json config_to_json(const RunConfig& cfg);

// Missing keys keep their defaults; unknown keys, wrong types and out-of-range values are errors
// whose messages start with `source_name`.
RunConfig config_from_json(const nlohmann::json& j, const std::string& source_name);

// Checks that depend on the backend actually used (train.backend "auto" resolves at run time):
// the cuda backend supports head_dim 64 and 128 only, and NSA blocks of 64 with top_k <= 64.
void check_backend_support(const RunConfig& cfg, const std::string& backend, const std::string& source_name);

// Micro-batches accumulated per optimizer step for `world_size` ranks: 1 when train.tokens_per_step is 0,
// else tokens_per_step / (batch_size * seq_len * world_size), which must be a whole number >= 1.
int64_t accumulation_steps(const RunConfig& cfg, int world_size, const std::string& source_name);

}  // namespace gfwa
