// Prompts of `gfwa generate` (docs/generate.md): text from --prompt, standard input, or a prompt
// file with one prompt per line, or, for a .jsonl file, one JSON object with a string field
// "prompt" per line. Prompts must be valid UTF-8.
#pragma once
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace gfwa {

// Throws std::runtime_error "<where>: invalid UTF-8 at byte N" when text is not valid UTF-8.
void check_prompt_utf8(std::string_view text, const std::string& where);

// Every line of the file is a prompt (a final newline ends the last line; it adds none). Lines of
// a .jsonl file that are blank are skipped. Throws std::runtime_error naming the file and the line
// (1-based) for invalid UTF-8, bad JSON or a missing/non-string "prompt"; and for an unreadable file.
std::vector<std::string> read_prompt_file(const std::string& path);

// All of `in` as one prompt, checked for UTF-8 (where names it in errors).
std::string read_prompt_stream(std::istream& in, const std::string& where);

}  // namespace gfwa
