// Token shard files (made by other tools, copied between machines): the input is a whole file. It
// opens or fails with a std::runtime_error naming the file; what opens reads back in full with
// every id inside the vocabulary.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/shard.h"

namespace {
constexpr int kVocab = 50257;
const std::string kPath = "/tmp/gfwa_fuzz_shard_" + std::to_string(::getpid()) + ".bin";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::ofstream(kPath, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  try {
    const gfwa::ShardInfo info = gfwa::read_shard_header(kPath);
    gfwa::ShardReader reader(kPath, kVocab);
    if (reader.size() != info.tokens) __builtin_trap();
    std::vector<int32_t> ids(size_t(reader.size()));
    reader.copy(0, reader.size(), ids.data());
    for (int32_t id : ids)
      if (id < 0 || id >= kVocab) __builtin_trap();
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind(kPath + ": ", 0) != 0) __builtin_trap();  // errors name the file
  }
  return 0;
}
