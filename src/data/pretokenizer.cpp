#include "data/pretokenizer.h"

#include <algorithm>

namespace gfwa {
namespace {

struct Range {
  uint32_t first, last;
  CharClass cls;
};
constexpr CharClass kLetter = CharClass::kLetter, kNumber = CharClass::kNumber, kSpace = CharClass::kSpace;
constexpr Range kRanges[] = {
#include "data/unicode_table.inc"
};

}  // namespace

CharClass codepoint_class(uint32_t cp) {
  const Range* r = std::upper_bound(std::begin(kRanges), std::end(kRanges), cp,
                                    [](uint32_t v, const Range& x) { return v < x.first; });
  if (r == std::begin(kRanges)) return CharClass::kOther;
  --r;
  return cp <= r->last ? r->cls : CharClass::kOther;
}

namespace detail {

// ASCII classes spelled out for the hot path (a test checks them against the range table).
constexpr std::array<CharClass, 128> make_ascii_table() {
  std::array<CharClass, 128> t{};
  for (int i = 0; i < 128; ++i) {
    if ((i >= 0x09 && i <= 0x0D) || i == ' ') t[i] = CharClass::kSpace;
    else if (i >= '0' && i <= '9') t[i] = CharClass::kNumber;
    else if ((i >= 'A' && i <= 'Z') || (i >= 'a' && i <= 'z')) t[i] = CharClass::kLetter;
    else t[i] = CharClass::kOther;
  }
  return t;
}
const std::array<CharClass, 128> kAsciiClass = make_ascii_table();

CharInfo decode_non_ascii(const unsigned char* p, const unsigned char* end) {
  const CharInfo invalid{1, CharClass::kOther};
  const unsigned b0 = p[0];
  uint32_t len, cp, min_cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; min_cp = 0x80; }
  else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; min_cp = 0x800; }
  else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; min_cp = 0x10000; }
  else return invalid;  // continuation byte, C0/C1 (always overlong) or F5..FF
  if (size_t(end - p) < len) return invalid;
  for (uint32_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return invalid;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;
  return {len, codepoint_class(cp)};
}

}  // namespace detail

size_t first_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  for (const auto* c = p; c < end;) {
    const CharInfo ch = char_at(c, end);
    if (*c >= 0x80 && ch.len == 1) return size_t(c - p);  // a valid non-ASCII code point is >= 2 bytes
    c += ch.len;
  }
  return std::string_view::npos;
}

}  // namespace gfwa
