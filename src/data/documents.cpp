#include "data/documents.h"

#include "data/pretokenizer.h"
#include "data/rng.h"

namespace gfwa {

std::vector<std::string_view> split_documents(std::string_view text, const std::string& sep_line) {
  std::vector<std::string_view> docs;
  if (sep_line.empty()) {
    if (!text.empty()) docs.push_back(text);
    return docs;
  }
  size_t doc_start = 0, line = 0;
  while (line < text.size()) {
    size_t eol = text.find('\n', line);
    const size_t next = eol == std::string_view::npos ? text.size() : eol + 1;
    if (eol == std::string_view::npos) eol = text.size();
    if (text.substr(line, eol - line) == sep_line) {
      if (line > doc_start) docs.push_back(text.substr(doc_start, line - doc_start));
      doc_start = next;
    }
    line = next;
  }
  if (text.size() > doc_start) docs.push_back(text.substr(doc_start));
  return docs;
}

uint64_t document_hash(std::string_view doc) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : doc) h = (h ^ c) * 0x100000001B3ull;
  return mix64(h);
}

bool in_val_split(std::string_view doc, double fraction) {
  return double(document_hash(doc) >> 11) * 0x1.0p-53 < fraction;
}

std::vector<std::string_view> cut_for_parallel(std::string_view doc, size_t target) {
  std::vector<std::string_view> pieces;
  const auto* b = reinterpret_cast<const unsigned char*>(doc.data());
  const auto* end = b + doc.size();
  size_t start = 0;
  if (target < 2) target = 2;
  for (size_t i = target; i < doc.size(); ++i) {
    if (doc[i - 1] != '\n' || i < 2 || b[i - 2] >= 0x80 || detail::kAsciiClass[b[i - 2]] == CharClass::kSpace ||
        char_at(b + i, end).cls == CharClass::kSpace)
      continue;
    pieces.push_back(doc.substr(start, i - start));
    start = i;
    i += target - 1;
  }
  if (start < doc.size()) pieces.push_back(doc.substr(start));
  return pieces;
}

}  // namespace gfwa
