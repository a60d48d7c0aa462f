// SHA-256 (FIPS 180-4), used to verify downloaded vocabulary files; no crypto library needed.
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
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);
// Hex digest of a file's contents; throws std::runtime_error naming the file when unreadable.
std::string sha256_file_hex(const std::string& path);

}  // namespace gfwa
