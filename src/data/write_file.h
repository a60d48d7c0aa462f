// A whole file written so that readers see the old file or the new one, never a part: a temporary
// file beside it, fsync'ed, then renamed over it.
#pragma once
#include <string>

namespace gfwa {

// Throws std::runtime_error "PATH: cannot write: REASON"; nothing is left behind on failure.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace gfwa
