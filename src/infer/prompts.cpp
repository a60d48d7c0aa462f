#include "infer/prompts.h"

#include <iterator>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "data/pretokenizer.h"
#include "io/files.h"

namespace gfwa {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

}  // namespace

void check_prompt_utf8(std::string_view text, const std::string& where) {
  const size_t bad = first_invalid_utf8(text);
  if (bad != std::string_view::npos)
    throw std::runtime_error(where + ": invalid UTF-8 at byte " + std::to_string(bad + 1));
}

std::vector<std::string> read_prompt_file(const std::string& path) {
  const std::string text = read_file(path);
  const bool jsonl = ends_with(path, ".jsonl");
  std::vector<std::string> prompts;
  size_t start = 0;
  for (int line = 1; start < text.size(); ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view row(text.data() + start, end - start);
    start = end + 1;
    const std::string where = path + ":" + std::to_string(line);
    check_prompt_utf8(row, where);
    if (!jsonl) {
      prompts.emplace_back(row);
      continue;
    }
    if (blank(row)) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(row);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(where + ": not JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw std::runtime_error(where + ": expected an object with a string field \"prompt\"");
    prompts.push_back(j["prompt"].get<std::string>());
  }
  return prompts;
}

std::string read_prompt_stream(std::istream& in, const std::string& where) {
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check_prompt_utf8(text, where);
  return text;
}

}  // namespace gfwa
