// Config files (users write them): any text either loads or fails with a ConfigError naming the
// file; whatever loads survives config_to_json -> config_from_json unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include "train/config_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  gfwa::RunConfig cfg;
  try {
    cfg = gfwa::config_from_text(text, "fuzz.json");
  } catch (const gfwa::ConfigError&) {
    return 0;
  }
  const nlohmann::json j = gfwa::config_to_json(cfg);
  if (gfwa::config_to_json(gfwa::config_from_json(j, "round trip")) != j) __builtin_trap();
  return 0;
}
