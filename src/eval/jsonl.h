// Reading the task files: JSON Lines (one object a line) and plain label lists, with every
// problem reported as "FILE:LINE: ..." (std::runtime_error).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gfwa::eval {

// Where a record came from, for error messages: "FILE:LINE".
struct Where {
  std::string file;
  int line = 0;
  std::string text() const { return file + ":" + std::to_string(line); }
};

[[noreturn]] void fail_at(const Where& w, const std::string& problem);

// Calls fn(object, where) for each non-blank line of path, in order. Throws naming the file when it
// cannot be read or holds no record, and naming the line when a line is not a JSON object.
void for_each_jsonl(const std::string& path, const std::function<void(const nlohmann::json&, const Where&)>& fn);

// The non-blank lines of a text file, each with its 1-based line number.
std::vector<std::pair<std::string, int>> read_lines(const std::string& path);

// Field accessors: a missing field or one of the wrong type is an error naming the field.
const nlohmann::json& field(const nlohmann::json& obj, const char* name, const Where& w);
std::string string_field(const nlohmann::json& obj, const char* name, const Where& w);
// An integer, or a string of decimal digits (some releases store labels as "3").
int int_field(const nlohmann::json& obj, const char* name, const Where& w);
// true/false, or 0/1.
bool bool_field(const nlohmann::json& obj, const char* name, const Where& w);

}  // namespace gfwa::eval
