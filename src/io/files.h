// Whole files, for every layer: read one in a single call; write one so that nothing half-written is
// ever left where a reader looks (the project rule: temp + fsync + rename). Errors are
// std::runtime_error "PATH: what" (a `fill` callback's own exceptions pass through unchanged).
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace gfwa {

// Throws "PATH: cannot open: <reason>" or "PATH: read error".
std::string read_file(const std::string& path);

// Where write_file_synced and write_file_atomic send the bytes their `fill` produces.
class FileSink {
 public:
  FileSink(int fd, const std::string& path) : fd_(fd), path_(path) {}
  // Writes all of it (retrying short writes); throws "PATH: cannot write: <reason>".
  void write(const void* data, size_t bytes);

 private:
  int fd_;
  const std::string& path_;
};
using FileFill = std::function<void(FileSink&)>;

// Creates path (it must not exist yet), lets fill write the content, fsyncs and closes it. On any
// error the file is removed. For files inside a directory that is itself renamed into place.
void write_file_synced(const std::string& path, const FileFill& fill);

// Replaces path atomically: write_file_synced to a temporary name next to it, rename over path,
// fsync the directory. Readers see the old file or the whole new one, never a part.
void write_file_atomic(const std::string& path, const FileFill& fill);
void write_file_atomic(const std::string& path, const void* data, size_t bytes);

// fsync of a directory, so that renames and new entries in it survive a crash.
void fsync_dir(const std::string& path);

}  // namespace gfwa
