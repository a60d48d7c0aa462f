// A whole file into memory, in one read; errors name the path.
#pragma once
#include <string>

namespace gfwa {

// Throws std::runtime_error "PATH: cannot open for reading" or "PATH: read error".
std::string read_file(const std::string& path);

}  // namespace gfwa
