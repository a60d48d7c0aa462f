// The safetensors container (https://github.com/huggingface/safetensors), read and written here
// without the Python library:
//   8 bytes    N, the header length, unsigned little-endian
//   N bytes    UTF-8 JSON object: "NAME": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
//              per tensor, plus an optional "__metadata__" object of string values; padded with
//              spaces to a multiple of 8 bytes
//   the rest   the tensors' raw little-endian bytes; offsets are relative to the end of the header
// We write the header keys sorted by name and the data in the order given, so the same tensors
// always give the same bytes. Reading checks everything a broken or hostile file could get wrong
// (sizes, offsets, overlaps, holes, JSON) and names the file and the problem.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gfwa {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bytes per element of a safetensors dtype name ("F32", "BF16", "I64", ...); 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // safetensors name: "F32", "BF16", "I32", ...
  std::vector<int64_t> shape;  // [] for a scalar
  const void* data = nullptr;  // little-endian elements, row-major
  size_t bytes = 0;
};

// Writes path atomically (temp file in the same directory, fsync, rename). Every tensor's bytes
// must equal its element count times its dtype size; names must be unique. Throws
// SafetensorsError naming the path.
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

// A whole safetensors file in memory, checked on load. tensors() point into it, in data order.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws SafetensorsError "PATH: problem"
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;  // null when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_, bytes_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace gfwa
