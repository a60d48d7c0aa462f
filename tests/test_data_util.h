// Helpers shared by the data tests: a self-removing temp dir and the tokenizer folder.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace gfwa::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("gfwa_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// GFWA_TOKENIZER_DIR, else the repository's data/tokenizer (scripts/data/fetch_tokenizer.sh).
inline std::string tokenizer_dir() {
  if (const char* env = std::getenv("GFWA_TOKENIZER_DIR")) return env;
  return std::string(GFWA_SOURCE_DIR) + "/data/tokenizer";
}

inline bool tokenizer_present() { return std::filesystem::exists(tokenizer_dir() + "/r50k_base.tiktoken"); }

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace gfwa::testing
