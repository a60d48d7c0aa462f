// Result files written whole or not at all: a temporary file beside the target, fsync'ed, then
// renamed over it.
#pragma once
#include <string>

namespace gfwa::eval {

// Creates the parent folder if needed. Throws std::runtime_error naming the path and the reason;
// on failure the temporary file is removed and an existing file at path is left as it was.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace gfwa::eval
