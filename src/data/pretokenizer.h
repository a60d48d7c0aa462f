// GPT-2 pre-tokenizer, written by hand (std::regex has no \p{L} / \p{N}). It splits text exactly
// as the pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does, over the code point classes of unicode_table.inc. Input is arbitrary bytes: each byte
// that does not start a well-formed UTF-8 sequence counts as one code point of class 'other',
// so every input splits into pieces that concatenate back to it.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <string_view>

namespace gfwa {

enum class CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

// Class of a code point, from the generated range table.
CharClass codepoint_class(uint32_t cp);

struct CharInfo {
  uint32_t len;  // bytes, 1..4
  CharClass cls;
};

namespace detail {
extern const std::array<CharClass, 128> kAsciiClass;
CharInfo decode_non_ascii(const unsigned char* p, const unsigned char* end);
}  // namespace detail

// The code point starting at p (p < end), strictly decoded: overlong forms, surrogates, values
// above U+10FFFF and truncated sequences are invalid, and an invalid byte is a 1-byte 'other'.
inline CharInfo char_at(const unsigned char* p, const unsigned char* end) {
  if (*p < 0x80) return {1, detail::kAsciiClass[*p]};
  return detail::decode_non_ascii(p, end);
}

// Offset of the first byte of text that does not start a well-formed UTF-8 sequence (char_at's
// rules), or std::string_view::npos when text is valid UTF-8.
size_t first_invalid_utf8(std::string_view text);

// Calls piece(offset, length) for each pre-token of text, in order; the pieces tile the text.
template <class Fn>
void pretokenize(std::string_view text, Fn&& piece) {
  const auto* base = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char* end = base + text.size();
  const unsigned char* p = base;
  // Extends q over consecutive code points of class c; returns the end of the run.
  auto run = [end](const unsigned char* q, CharClass c) {
    while (q < end) {
      CharInfo ci = char_at(q, end);
      if (ci.cls != c) break;
      q += ci.len;
    }
    return q;
  };
  while (p < end) {
    const unsigned char* start = p;
    if (*p == '\'' && p + 1 < end) {  // contractions, case-sensitive as in GPT-2
      unsigned char a = p[1], b = p + 2 < end ? p[2] : 0;
      size_t n = (a == 's' || a == 't' || a == 'm' || a == 'd') ? 2
                 : ((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l') ? 3 : 0;
      if (n) {
        piece(size_t(p - base), n);
        p += n;
        continue;
      }
    }
    CharInfo c = char_at(p, end);
    if (c.cls == CharClass::kSpace) {
      // A lone ' ' before a non-space joins the following letters / numbers / others.
      if (*p == ' ' && p + 1 < end) {
        CharInfo next = char_at(p + 1, end);
        if (next.cls != CharClass::kSpace) {
          p = run(p + 1 + next.len, next.cls);
          piece(size_t(start - base), size_t(p - start));
          continue;
        }
      }
      // \s+(?!\S): the whole run at the end of text; otherwise all but the run's last code
      // point, which then starts the next piece. \s+ takes a single space code point.
      const unsigned char* last = p;
      const unsigned char* q = p;
      while (q < end) {
        CharInfo ci = char_at(q, end);
        if (ci.cls != CharClass::kSpace) break;
        last = q;
        q += ci.len;
      }
      p = (q == end || last == start) ? q : last;
      piece(size_t(start - base), size_t(p - start));
      continue;
    }
    p = run(p + c.len, c.cls);
    piece(size_t(start - base), size_t(p - start));
  }
}

}  // namespace gfwa
