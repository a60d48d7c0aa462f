// Token shards, llm.c compatible: a header of 256 little-endian int32, then the tokens.
//   header[0] magic: 20240520 (uint16 tokens) or 20240801 (uint32 tokens, for vocabularies > 65536)
//   header[1] version: 1 for 20240520, 7 for 20240801 (as llm.c writes them)
//   header[2] token count (>= 1)
//   header[3], header[4] (our extension): UTF-8 byte count of the text the tokens decode to, not
//             counting <|endoftext|>, as uint32 low / high words; 0 = unknown (llm.c leaves it 0)
//   header[5..255] zero.
// Every problem is a std::runtime_error whose message starts with the file's path.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace gfwa {

constexpr int kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;
constexpr int32_t kShardMagicU16 = 20240520, kShardVersionU16 = 1;
constexpr int32_t kShardMagicU32 = 20240801, kShardVersionU32 = 7;

struct ShardInfo {
  std::string path;
  int64_t tokens = 0;
  int token_size = 2;       // bytes per token
  uint64_t utf8_bytes = 0;  // 0 = unknown
};

// Reads and checks the header against the file size (magic, version, empty, truncation).
ShardInfo read_shard_header(const std::string& path);

// Writes tokens (each in [0, vocab_size)) to path via a temp file renamed at the end; uint16
// tokens when vocab_size <= 65536, else uint32.
void write_shard(const std::string& path, const int32_t* tokens, int64_t n, uint64_t utf8_bytes, int vocab_size);

// A shard that opened fine but cannot be read as it was: truncated or rewritten while in use, or
// an I/O error. The trainer stops on it with a checkpoint (docs/training.md).
class ShardReadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One shard open for reading; the constructor checks the header and every token id. Tokens are
// read with pread, not through a memory map: a file truncated under a map kills the process with
// SIGBUS, while a short read is an error that names the file. Non-regular files (a FIFO named
// like a shard) are refused without blocking.
class ShardReader {
 public:
  ShardReader(const std::string& path, int vocab_size);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  const ShardInfo& info() const { return info_; }
  int64_t size() const { return info_.tokens; }
  // Copies tokens [begin, begin + n) to out as int32, checking each id again; throws
  // ShardReadError naming the file when they cannot be read as the header promised.
  void copy(int64_t begin, int64_t n, int32_t* out) const;

 private:
  void read_ids(int64_t begin, int64_t n, int32_t* out) const;  // unchecked ids; short reads throw
  ShardInfo info_;
  int fd_ = -1;
  uint32_t vocab_ = 0;
};

}  // namespace gfwa
