// GPT-2 pre-tokenizer: hand-checked splits of the regex's tricky cases, the code point classes,
// strict UTF-8 decoding, and that pieces always tile the input (random bytes included).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "data/pretokenizer.h"

using namespace gfwa;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t expect = 0;
  pretokenize(s, [&](size_t off, size_t len) {
    EXPECT_EQ(off, expect);
    EXPECT_GT(len, 0u);
    expect = off + len;
    out.push_back(s.substr(off, len));
  });
  EXPECT_EQ(expect, s.size());
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST(DataPretokenizer, Words) {
  EXPECT_EQ(split(""), V{});
  EXPECT_EQ(split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split(" The quick brown fox."), (V{" The", " quick", " brown", " fox", "."}));
  EXPECT_EQ(split("abc123def"), (V{"abc", "123", "def"}));
  EXPECT_EQ(split("a, b"), (V{"a", ",", " b"}));
  EXPECT_EQ(split("x !?y"), (V{"x", " !?", "y"}));
}

TEST(DataPretokenizer, Contractions) {
  EXPECT_EQ(split("don't"), (V{"don", "'t"}));
  EXPECT_EQ(split("we're they've I'm you'll he'd it's"),
            (V{"we", "'re", " they", "'ve", " I", "'m", " you", "'ll", " he", "'d", " it", "'s"}));
  EXPECT_EQ(split("'steve"), (V{"'s", "teve"}));  // a contraction needs no word boundary
  EXPECT_EQ(split("IT'S"), (V{"IT", "'", "S"}));   // case-sensitive
  EXPECT_EQ(split(" 's"), (V{" '", "s"}));         // ' ?[^\s\p{L}\p{N}]+' wins at the space
  EXPECT_EQ(split("!'s"), (V{"!'", "s"}));         // punctuation runs swallow the quote
  EXPECT_EQ(split("'"), (V{"'"}));
  EXPECT_EQ(split("'l"), (V{"'", "l"}));
}

TEST(DataPretokenizer, WhitespaceLookahead) {
  // \s+(?!\S): a run of spaces before a word leaves its last space to the word.
  EXPECT_EQ(split("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split("a  "), (V{"a", "  "}));           // at the end, the whole run
  EXPECT_EQ(split("a\n\nb"), (V{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split("a \nb"), (V{"a", " ", "\n", "b"}));
  EXPECT_EQ(split("a\n b"), (V{"a", "\n", " b"}));
  EXPECT_EQ(split("a \t  1"), (V{"a", " \t ", " 1"}));
  EXPECT_EQ(split("  "), (V{"  "}));
  EXPECT_EQ(split(" "), (V{" "}));
  EXPECT_EQ(split("\t.x"), (V{"\t", ".", "x"}));     // only U+0020 joins the next piece
  EXPECT_EQ(split("a\xe3\x80\x80\xe3\x80\x80" "b"),  // U+3000 is White_Space
            (V{"a", "\xe3\x80\x80", "\xe3\x80\x80", "b"}));
  EXPECT_EQ(split("a \xc2\xa0 b"), (V{"a", " \xc2\xa0", " b"}));  // U+00A0 too
  EXPECT_EQ(split("a\x1c" "b"), (V{"a", "\x1c", "b"}));  // U+001C is not White_Space
}

TEST(DataPretokenizer, UnicodeClasses) {
  EXPECT_EQ(split("Привет, мир!"), (V{"Привет", ",", " мир", "!"}));
  EXPECT_EQ(split("x²³ ½"), (V{"x", "²³", " ½"}));     // No is \p{N}
  EXPECT_EQ(split("e\xcc\x81t"), (V{"e", "\xcc\x81", "t"}));  // a combining mark is 'other'
  EXPECT_EQ(split("日本語です"), (V{"日本語です"}));
  EXPECT_EQ(split("🙂🙂 a"), (V{"🙂🙂", " a"}));
  EXPECT_EQ(codepoint_class('A'), CharClass::kLetter);
  EXPECT_EQ(codepoint_class(0x4E00), CharClass::kLetter);
  EXPECT_EQ(codepoint_class(0x0660), CharClass::kNumber);  // ARABIC-INDIC DIGIT ZERO
  EXPECT_EQ(codepoint_class(0x2028), CharClass::kSpace);
  EXPECT_EQ(codepoint_class(0x0301), CharClass::kOther);
  EXPECT_EQ(codepoint_class(0x10FFFF), CharClass::kOther);
  for (uint32_t c = 0; c < 128; ++c) EXPECT_EQ(detail::kAsciiClass[c], codepoint_class(c)) << c;
}

TEST(DataPretokenizer, StrictUtf8) {
  auto info = [](const std::string& s) {
    auto* p = reinterpret_cast<const unsigned char*>(s.data());
    return char_at(p, p + s.size());
  };
  EXPECT_EQ(info("\xc3\xa9").len, 2u);
  EXPECT_EQ(info("\xc3\xa9").cls, CharClass::kLetter);
  EXPECT_EQ(info("\xf0\x9f\x99\x82").len, 4u);
  for (const char* bad : {"\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xf5\x80\x80\x80", "\xff", "\xc3", "\xe2\x82", "\xc3(", "\xf0\x9f\x99"}) {
    EXPECT_EQ(info(bad).len, 1u) << bad;
    EXPECT_EQ(info(bad).cls, CharClass::kOther) << bad;
  }
  EXPECT_EQ(split("ab\xff\xfe" "cd"), (V{"ab", "\xff\xfe", "cd"}));
  EXPECT_EQ(split("a \xc3"), (V{"a", " \xc3"}));
}

TEST(DataPretokenizer, RandomBytesTile) {
  for (uint64_t seed : {1u, 22u, 333u}) {
    std::mt19937_64 rng(seed);
    for (int rep = 0; rep < 50; ++rep) {
      std::string s(rng() % 300 + 1, '\0');
      for (auto& c : s) c = char(rng() % 4 == 0 ? " '\n\xc3\xa9s"[rng() % 7] : rng());
      split(s);  // asserts the tiling
    }
  }
}
