#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "io/files.h"

namespace gfwa {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw std::runtime_error(path + ": " + what); }

// Native byte order is little-endian on every target we build for (x86-64, aarch64); llm.c
// writes the same way.
static_assert(sizeof(int32_t) == 4, "int32");

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

ShardInfo parse_header(const std::string& path, const int32_t* h, int64_t file_size) {
  ShardInfo info;
  info.path = path;
  if (h[0] == kShardMagicU16) {
    if (h[1] != kShardVersionU16)
      fail(path, "version " + std::to_string(h[1]) + " for magic 20240520, expected 1");
    info.token_size = 2;
  } else if (h[0] == kShardMagicU32) {
    if (h[1] != kShardVersionU32)
      fail(path, "version " + std::to_string(h[1]) + " for magic 20240801, expected 7");
    info.token_size = 4;
  } else {
    fail(path, "not a token shard: magic " + std::to_string(h[0]) + ", expected 20240520 or 20240801");
  }
  info.tokens = h[2];
  if (info.tokens < 0) fail(path, "negative token count " + std::to_string(h[2]));
  if (info.tokens == 0) fail(path, "empty shard (header says 0 tokens)");
  info.utf8_bytes = uint64_t(uint32_t(h[3])) | (uint64_t(uint32_t(h[4])) << 32);
  const int64_t want = kShardHeaderBytes + info.tokens * info.token_size;
  if (file_size < want)
    fail(path, "truncated: header says " + std::to_string(info.tokens) + " tokens (" + std::to_string(want) +
                   " bytes) but the file has " + std::to_string(file_size) + " bytes");
  if (file_size > want)
    fail(path, "size mismatch: header says " + std::to_string(info.tokens) + " tokens (" + std::to_string(want) +
                   " bytes) but the file has " + std::to_string(file_size) + " bytes");
  return info;
}

ShardInfo read_header_fd(const std::string& path, int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  if (st.st_size < kShardHeaderBytes)
    fail(path, "truncated: " + std::to_string(st.st_size) + " bytes, shorter than the 1024-byte header");
  int32_t h[kShardHeaderInts];
  if (::pread(fd, h, sizeof(h), 0) != ssize_t(sizeof(h))) fail(path, "cannot read the header");
  return parse_header(path, h, st.st_size);
}

int open_or_fail(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  return fd;
}

}  // namespace

ShardInfo read_shard_header(const std::string& path) {
  Fd fd{open_or_fail(path)};
  return read_header_fd(path, fd.fd);
}

void write_shard(const std::string& path, const int32_t* tokens, int64_t n, uint64_t utf8_bytes, int vocab_size) {
  if (n <= 0) fail(path, "refusing to write an empty shard");
  if (n > INT32_MAX) fail(path, std::to_string(n) + " tokens do not fit the int32 token count");
  if (vocab_size <= 0) fail(path, "vocab size " + std::to_string(vocab_size) + " is not positive");
  const bool wide = vocab_size > 65536;
  int32_t h[kShardHeaderInts] = {};
  h[0] = wide ? kShardMagicU32 : kShardMagicU16;
  h[1] = wide ? kShardVersionU32 : kShardVersionU16;
  h[2] = int32_t(n);
  h[3] = int32_t(uint32_t(utf8_bytes));
  h[4] = int32_t(uint32_t(utf8_bytes >> 32));
  // Tokens are checked before anything is written.
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_size)
      fail(path, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) + " is outside [0, " +
                     std::to_string(vocab_size) + ")");
  write_file_atomic(path, [&](FileSink& f) {
    f.write(h, sizeof(h));
    std::vector<unsigned char> buf;
    const int64_t chunk = 1 << 16;
    for (int64_t pos = 0; pos < n; pos += chunk) {
      const int64_t m = std::min(chunk, n - pos);
      buf.resize(size_t(m) * (wide ? 4 : 2));
      for (int64_t i = 0; i < m; ++i) {
        const int32_t t = tokens[pos + i];
        if (wide) std::memcpy(&buf[size_t(i) * 4], &t, 4);
        else {
          const uint16_t s = uint16_t(t);
          std::memcpy(&buf[size_t(i) * 2], &s, 2);
        }
      }
      f.write(buf.data(), buf.size());
    }
  });
}

MappedShard::MappedShard(const std::string& path, int vocab_size) {
  Fd fd{open_or_fail(path)};
  info_ = read_header_fd(path, fd.fd);
  map_len_ = size_t(kShardHeaderBytes + info_.tokens * info_.token_size);
  map_ = ::mmap(nullptr, map_len_, PROT_READ, MAP_SHARED, fd.fd, 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, std::string("cannot mmap: ") + std::strerror(errno));
  }
  data_ = static_cast<const unsigned char*>(map_) + kShardHeaderBytes;
  // Out-of-vocabulary ids would index past the embedding table: check them all once, here.
  const uint32_t limit = uint32_t(vocab_size);
  for (int64_t i = 0; i < info_.tokens; ++i) {
    uint32_t t;
    if (info_.token_size == 2) {
      uint16_t s;
      std::memcpy(&s, data_ + 2 * i, 2);
      t = s;
    } else {
      std::memcpy(&t, data_ + 4 * i, 4);
    }
    if (t >= limit) {
      ::munmap(map_, map_len_);
      map_ = nullptr;
      fail(path, "token id " + std::to_string(t) + " at index " + std::to_string(i) + " is >= vocab size " +
                     std::to_string(vocab_size));
    }
  }
}

MappedShard::~MappedShard() {
  if (map_) ::munmap(map_, map_len_);
}

void MappedShard::copy(int64_t begin, int64_t n, int32_t* out) const {
  if (begin < 0 || n < 0 || begin + n > info_.tokens)
    fail(info_.path, "token range [" + std::to_string(begin) + ", " + std::to_string(begin + n) + ") is outside the " +
                         std::to_string(info_.tokens) + " tokens");
  if (info_.token_size == 2) {
    const unsigned char* p = data_ + 2 * begin;
    for (int64_t i = 0; i < n; ++i) {
      uint16_t s;
      std::memcpy(&s, p + 2 * i, 2);
      out[i] = s;
    }
  } else {
    std::memcpy(out, data_ + 4 * begin, size_t(n) * 4);
  }
}

}  // namespace gfwa
