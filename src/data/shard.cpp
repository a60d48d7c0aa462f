#include "data/shard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

// O_NONBLOCK: opening a FIFO for reading would wait for a writer; read_header_fd then refuses
// anything that is not a regular file (for which the flag changes nothing).
int open_or_fail(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  return fd;
}

// The first id >= limit among n ids, or -1.
int64_t first_out_of_range(const int32_t* ids, int64_t n, uint32_t limit) {
  for (int64_t i = 0; i < n; ++i)
    if (uint32_t(ids[i]) >= limit) return i;
  return -1;
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

ShardReader::ShardReader(const std::string& path, int vocab_size) : vocab_(uint32_t(vocab_size)) {
  Fd fd{open_or_fail(path)};
  info_ = read_header_fd(path, fd.fd);
  fd_ = fd.fd;
  fd.fd = -1;
  // Out-of-vocabulary ids would index past the embedding table: check them all once, here.
  std::vector<int32_t> ids;
  constexpr int64_t kChunk = 1 << 20;
  for (int64_t pos = 0; pos < info_.tokens; pos += kChunk) {
    const int64_t n = std::min(kChunk, info_.tokens - pos);
    ids.resize(size_t(n));
    try {
      read_ids(pos, n, ids.data());
    } catch (...) {
      ::close(fd_);
      throw;
    }
    const int64_t bad = first_out_of_range(ids.data(), n, vocab_);
    if (bad >= 0) {
      ::close(fd_);
      fail(path, "token id " + std::to_string(uint32_t(ids[size_t(bad)])) + " at index " + std::to_string(pos + bad) +
                     " is >= vocab size " + std::to_string(vocab_size));
    }
  }
}

ShardReader::~ShardReader() {
  if (fd_ >= 0) ::close(fd_);
}

void ShardReader::read_ids(int64_t begin, int64_t n, int32_t* out) const {
  const size_t bytes = size_t(n) * size_t(info_.token_size);
  // uint32 ids land in out directly; uint16 ids in the upper half of out, then widen front to back
  // (each 4-byte slot i is written after the 2-byte id i it overlaps was read).
  char* dst = reinterpret_cast<char*>(out) + (info_.token_size == 2 ? bytes : 0);
  const off_t at = off_t(kShardHeaderBytes + begin * info_.token_size);
  size_t done = 0;
  while (done < bytes) {
    const ssize_t r = ::pread(fd_, dst + done, bytes - done, at + off_t(done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw ShardReadError(info_.path + ": read error: " + std::strerror(errno));
    if (r == 0) {
      struct stat st {};
      ::fstat(fd_, &st);
      throw ShardReadError(info_.path + ": truncated while in use: tokens [" + std::to_string(begin) + ", " +
                           std::to_string(begin + n) + ") lie past its end (" + std::to_string(st.st_size) +
                           " bytes now, " + std::to_string(kShardHeaderBytes + info_.tokens * info_.token_size) +
                           " when opened)");
    }
    done += size_t(r);
  }
  if (info_.token_size == 2) {
    const auto* src = reinterpret_cast<const unsigned char*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      uint16_t s;
      std::memcpy(&s, src + 2 * i, 2);
      out[i] = s;
    }
  }
}

void ShardReader::copy(int64_t begin, int64_t n, int32_t* out) const {
  if (begin < 0 || n < 0 || begin + n > info_.tokens)
    fail(info_.path, "token range [" + std::to_string(begin) + ", " + std::to_string(begin + n) + ") is outside the " +
                         std::to_string(info_.tokens) + " tokens");
  read_ids(begin, n, out);
  const int64_t bad = first_out_of_range(out, n, vocab_);
  if (bad >= 0)
    throw ShardReadError(info_.path + ": changed while in use: token id " + std::to_string(uint32_t(out[bad])) +
                         " at index " + std::to_string(begin + bad) + " is >= vocab size " + std::to_string(vocab_));
}

}  // namespace gfwa
