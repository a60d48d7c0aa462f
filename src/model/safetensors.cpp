#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "io/files.h"

namespace gfwa {
namespace {

// The Python library refuses larger headers too; a bigger length is a corrupt file, not a model.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
constexpr const char* kMetadataKey = "__metadata__";

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw SafetensorsError(path + ": " + what); }

// Element count of a shape into *out; false when a dimension is negative or the count overflows.
bool element_count(const std::vector<int64_t>& shape, size_t* out) {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > std::numeric_limits<size_t>::max() / size_t(d)) return false;
    n *= size_t(d);
  }
  *out = n;
  return true;
}

std::string shape_text(const std::vector<int64_t>& shape) { return nlohmann::json(shape).dump(); }

// The whole file into out (io/files.h), errors as SafetensorsError naming the path.
void read_all(const std::string& path, std::string& out) {
  try {
    out = read_file(path);
  } catch (const SafetensorsError&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw SafetensorsError(e.what());
  }
}

// The field `key` of tensor `name`'s header entry as a list of non-negative integers.
std::vector<int64_t> int_list(const std::string& path, const std::string& name, const nlohmann::json& entry,
                              const char* key) {
  if (!entry.contains(key) || !entry.at(key).is_array())
    fail(path, "tensor " + name + ": \"" + key + "\" missing or not a list");
  std::vector<int64_t> out;
  for (const auto& v : entry.at(key)) {
    if (!v.is_number_unsigned()) fail(path, "tensor " + name + ": \"" + key + "\" holds " + v.dump() +
                                                ", not a non-negative integer");
    const uint64_t x = v.get<uint64_t>();
    if (x > uint64_t(std::numeric_limits<int64_t>::max())) fail(path, "tensor " + name + ": \"" + key + "\" value too large");
    out.push_back(int64_t(x));
  }
  return out;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2},
      {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8}, {"U64", 8}, {"F64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == kMetadataKey || header.contains(t.name)) fail(path, "tensor name " + t.name + " used twice or reserved");
    size_t n = 0;
    const size_t esize = safetensors_dtype_size(t.dtype);
    if (esize == 0) fail(path, "tensor " + t.name + ": unknown dtype " + t.dtype);
    if (!element_count(t.shape, &n) || n * esize != t.bytes)
      fail(path, "tensor " + t.name + ": " + std::to_string(t.bytes) + " bytes do not fit shape " + shape_text(t.shape) +
                     " of " + t.dtype);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(text.size()) >> (8 * i));

  try {
    write_file_atomic(path, [&](FileSink& f) {
      f.write(len, sizeof len);
      f.write(text.data(), text.size());
      for (const auto& t : tensors) f.write(t.data, t.bytes);
    });
  } catch (const std::runtime_error& e) {
    throw SafetensorsError(e.what());  // "PATH: cannot ...": io/files names the path
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  read_all(path, bytes_);
  if (bytes_.size() < 8) fail(path, "only " + std::to_string(bytes_.size()) + " bytes, not a safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes_[size_t(i)]);
  if (n > kMaxHeaderBytes || n > bytes_.size() - 8)
    fail(path, "header length " + std::to_string(n) + " exceeds the file's " + std::to_string(bytes_.size()) +
                   " bytes (truncated or not a safetensors file)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + long(n));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");
  const size_t data_begin = 8 + size_t(n), data_bytes = bytes_.size() - data_begin;

  std::vector<std::pair<uint64_t, uint64_t>> spans;  // (begin, end), to check coverage
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      if (!entry.is_object()) fail(path, "__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(path, "__metadata__ value of " + k + " is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) fail(path, "tensor " + name + ": header entry is not an object");
    if (!entry.contains("dtype") || !entry.at("dtype").is_string())
      fail(path, "tensor " + name + ": \"dtype\" missing or not a string");
    SafetensorsTensor t;
    t.name = name;
    t.dtype = entry.at("dtype").get<std::string>();
    t.shape = int_list(path, name, entry, "shape");
    const auto off = int_list(path, name, entry, "data_offsets");
    if (off.size() != 2 || off[0] > off[1])
      fail(path, "tensor " + name + ": data_offsets " + entry.at("data_offsets").dump() + " is not [begin, end]");
    if (uint64_t(off[1]) > data_bytes)
      fail(path, "tensor " + name + ": data ends at byte " + std::to_string(off[1]) + " of a " +
                     std::to_string(data_bytes) + "-byte data section (truncated file?)");
    const size_t esize = safetensors_dtype_size(t.dtype);
    size_t count = 0;
    if (esize == 0) fail(path, "tensor " + name + ": unknown dtype " + t.dtype);
    if (!element_count(t.shape, &count) || count > std::numeric_limits<size_t>::max() / esize ||
        count * esize != size_t(off[1] - off[0]))
      fail(path, "tensor " + name + ": shape " + shape_text(t.shape) + " of " + t.dtype + " does not fit its " +
                     std::to_string(off[1] - off[0]) + " bytes");
    t.data = bytes_.data() + data_begin + off[0];
    t.bytes = size_t(off[1] - off[0]);
    tensors_.push_back(std::move(t));
    spans.emplace_back(uint64_t(off[0]), uint64_t(off[1]));
  }
  // The tensors must tile the data section exactly: no overlap, no hole, nothing after the last.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return spans[a] < spans[b]; });
  uint64_t at = 0;
  for (size_t i : order) {
    if (spans[i].first != at)
      fail(path, "tensor " + tensors_[i].name + " starts at data byte " + std::to_string(spans[i].first) +
                     ", expected " + std::to_string(at) + " (overlapping or missing data)");
    at = spans[i].second;
  }
  if (at != data_bytes)
    fail(path, std::to_string(data_bytes - at) + " bytes after the last tensor's data (corrupt file)");
  std::vector<SafetensorsTensor> sorted;
  for (size_t i : order) sorted.push_back(tensors_[i]);
  tensors_ = std::move(sorted);
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace gfwa
