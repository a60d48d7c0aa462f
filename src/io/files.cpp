#include "io/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace gfwa {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw std::runtime_error(path + ": " + what + ": " + std::strerror(err));
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(path, "cannot open", errno);
  const std::streamoff size = f.tellg();
  if (size < 0) throw std::runtime_error(path + ": read error");
  std::string out(size_t(size), '\0');
  f.seekg(0);
  if (!f.read(out.data(), size)) throw std::runtime_error(path + ": read error");
  return out;
}

void FileSink::write(const void* data, size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < bytes) {
    const size_t chunk = std::min<size_t>(bytes - done, size_t(1) << 26);
    const ssize_t w = ::write(fd_, p + done, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(path_, "cannot write", errno);
    }
    done += size_t(w);
  }
}

void write_file_synced(const std::string& path, const FileFill& fill) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot create", errno);
  try {
    FileSink sink(fd, path);
    fill(sink);
    if (::fsync(fd) != 0) fail(path, "cannot write", errno);
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    fail(path, "cannot write", err);
  }
}

void write_file_atomic(const std::string& path, const FileFill& fill) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // left by an earlier process of the same pid that was killed
  write_file_synced(tmp, fill);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "cannot rename the temporary file into place", err);
  }
  fsync_dir(parent_dir(path));
}

void write_file_atomic(const std::string& path, const void* data, size_t bytes) {
  write_file_atomic(path, [&](FileSink& f) { f.write(data, bytes); });
}

void fsync_dir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(path, "cannot open directory", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail(path, "cannot fsync directory", err);
}

}  // namespace gfwa
