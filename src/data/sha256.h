// SHA-256 (FIPS 180-4): vocabulary files, token shards and checkpoints carry their digests; no crypto library
// needed. Blocks go through the x86 SHA extensions where the CPU has them (~10x the portable code: a 1.3b
// checkpoint is 20 GB), else through the portable code; both give the same digest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gfwa {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex_digest();  // finalizes; the object must not be updated afterwards

 private:
  void blocks(const uint8_t* p, size_t n);  // n whole 64-byte blocks
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);
// Whether Sha256 uses the CPU's SHA extensions (tests compare both paths).
bool sha256_uses_cpu_extensions();
// Tests: the portable path alone, on the same state layout.
void sha256_blocks_portable(uint32_t* h, const uint8_t* p, size_t n);
// Hex digest of a file's contents; throws std::runtime_error naming the file when unreadable.
std::string sha256_file_hex(const std::string& path);

}  // namespace gfwa
