#include "eval/jsonl.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace gfwa::eval {
namespace {

using nlohmann::json;

std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; }

std::ifstream open_or_fail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  return in;
}

}  // namespace

void fail_at(const Where& w, const std::string& problem) { throw std::runtime_error(w.text() + ": " + problem); }

std::vector<std::pair<std::string, int>> read_lines(const std::string& path) {
  std::ifstream in = open_or_fail(path);
  std::vector<std::pair<std::string, int>> out;
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (!blank(line)) out.emplace_back(line, n);
  }
  if (in.bad()) throw std::runtime_error(path + ": read error");
  return out;
}

void for_each_jsonl(const std::string& path, const std::function<void(const json&, const Where&)>& fn) {
  const auto lines = read_lines(path);
  if (lines.empty()) throw std::runtime_error(path + ": no records (an empty file)");
  for (const auto& [text, n] : lines) {
    const Where w{path, n};
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) fail_at(w, "not valid JSON");
    if (!j.is_object()) fail_at(w, std::string("expected a JSON object, got ") + j.type_name());
    fn(j, w);
  }
}

const json& field(const json& obj, const char* name, const Where& w) {
  const auto it = obj.find(name);
  if (it == obj.end()) fail_at(w, std::string("missing field '") + name + "'");
  return *it;
}

std::string string_field(const json& obj, const char* name, const Where& w) {
  const json& v = field(obj, name, w);
  if (!v.is_string()) fail_at(w, std::string("field '") + name + "' must be a string (got " + brief(v) + ")");
  return v.get<std::string>();
}

int int_field(const json& obj, const char* name, const Where& w) {
  const json& v = field(obj, name, w);
  if (v.is_number_integer() && v.get<int64_t>() >= -1000000 && v.get<int64_t>() <= 1000000) return v.get<int>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (!s.empty() && s.size() <= 6 && s.find_first_not_of("0123456789") == std::string::npos) return std::stoi(s);
  }
  fail_at(w, std::string("field '") + name + "' must be an integer (got " + brief(v) + ")");
}

bool bool_field(const json& obj, const char* name, const Where& w) {
  const json& v = field(obj, name, w);
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1)) return v.get<int64_t>() == 1;
  fail_at(w, std::string("field '") + name + "' must be true/false or 0/1 (got " + brief(v) + ")");
}

}  // namespace gfwa::eval
