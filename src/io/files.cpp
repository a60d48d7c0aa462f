#include "io/files.h"

#include <fstream>
#include <stdexcept>

namespace gfwa {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error(path + ": cannot open for reading");
  const std::streamoff size = f.tellg();
  if (size < 0) throw std::runtime_error(path + ": read error");
  std::string out(size_t(size), '\0');
  f.seekg(0);
  if (!f.read(out.data(), size)) throw std::runtime_error(path + ": read error");
  return out;
}

}  // namespace gfwa
