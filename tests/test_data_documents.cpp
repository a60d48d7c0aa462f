// Document handling of the tokenize tool: separator lines, the val split's hash, and cutting
// documents where pre-tokenization splits anyway (so pieces encode like the whole).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "data/documents.h"
#include "data/pretokenizer.h"

using namespace gfwa;

namespace {

std::vector<std::string> strs(const std::vector<std::string_view>& v) { return {v.begin(), v.end()}; }

// Pre-token boundaries of text, as absolute offsets.
std::vector<size_t> boundaries(std::string_view text, size_t base = 0) {
  std::vector<size_t> out;
  pretokenize(text, [&](size_t off, size_t len) { out.push_back(base + off + len); });
  return out;
}

}  // namespace

TEST(DataDocuments, SeparatorLines) {
  using V = std::vector<std::string>;
  EXPECT_EQ(strs(split_documents("a\nb\n", "")), V{"a\nb\n"});
  EXPECT_EQ(strs(split_documents("", "")), V{});
  EXPECT_EQ(strs(split_documents("one\n%\ntwo\nlines\n%\n", "%")), (V{"one\n", "two\nlines\n"}));
  EXPECT_EQ(strs(split_documents("%\n%\nx\n%%\ny", "%")), (V{"x\n%%\ny"}));  // "%%" is not the separator
  EXPECT_EQ(strs(split_documents("x\n%", "%")), V{"x\n"});                  // separator without newline
  EXPECT_EQ(strs(split_documents("x\n %\ny", "%")), V{"x\n %\ny"});
}

TEST(DataDocuments, ValSplitIsDeterministicAndNearTheFraction) {
  EXPECT_EQ(document_hash("abc"), document_hash(std::string("abc")));
  EXPECT_NE(document_hash("abc"), document_hash("abd"));
  std::mt19937_64 rng(8);
  int val = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const std::string doc = "document " + std::to_string(rng());
    const bool v = in_val_split(doc, 0.1);
    EXPECT_EQ(v, in_val_split(doc, 0.1));
    EXPECT_TRUE(!v || in_val_split(doc, 0.2)) << "val at 0.1 must stay val at 0.2";
    EXPECT_FALSE(in_val_split(doc, 0.0));
    val += v;
  }
  EXPECT_NEAR(double(val) / n, 0.1, 0.01);
}

TEST(DataDocuments, CutsAreWherePretokenizationSplits) {
  static const char* const kParts[] = {"word", " word", "\n", "\n\n", "  ", " \n", "\t", "'s", "é", "\xe3\x80\x80",
                                       "\xc2\xa0", "12", ".", "\xff", " "};
  for (uint64_t seed : {1u, 2u, 3u, 4u}) {
    std::mt19937_64 rng(seed);
    std::string doc;
    while (doc.size() < 20000) doc += kParts[rng() % (sizeof(kParts) / sizeof(kParts[0]))];
    const size_t target = 1 + rng() % 300;
    const auto pieces = cut_for_parallel(doc, target);
    ASSERT_GT(pieces.size(), 5u) << "seed " << seed;
    std::vector<size_t> joined;
    size_t base = 0;
    for (std::string_view p : pieces) {
      EXPECT_EQ(p.data(), doc.data() + base);
      EXPECT_TRUE(p.size() >= target || base + p.size() == doc.size());
      const auto b = boundaries(p, base);
      joined.insert(joined.end(), b.begin(), b.end());
      base += p.size();
    }
    EXPECT_EQ(base, doc.size());
    EXPECT_EQ(joined, boundaries(doc)) << "seed " << seed;
  }
}
