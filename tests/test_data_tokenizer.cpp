// GPT-2 BPE against OpenAI's encodings: the 64 r50k_base cases of gpt-tokenizer's TestPlans.txt,
// known encodings, special-token handling, byte-exact round trips of arbitrary bytes, the two
// merge algorithms agreeing, the vocabulary agreeing with OpenAI's encoder.json / vocab.bpe, and
// a corrupted vocabulary file being refused. Skips when scripts/data/fetch_tokenizer.sh has not run.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "test_data_util.h"

using namespace gfwa;
using gfwa::testing::read_bytes;
using gfwa::testing::tokenizer_dir;

namespace {

class DataTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (gfwa::testing::tokenizer_present()) tok_ = std::make_unique<Tokenizer>(tokenizer_dir());
  }
  static void TearDownTestSuite() { tok_.reset(); }
  void SetUp() override {
    if (!tok_) GTEST_SKIP() << "no " << tokenizer_dir() << "/r50k_base.tiktoken; run scripts/data/fetch_tokenizer.sh";
  }
  static std::unique_ptr<Tokenizer> tok_;
};
std::unique_ptr<Tokenizer> DataTokenizer::tok_;

using Ids = std::vector<int32_t>;

std::string random_text(std::mt19937_64& rng, size_t n) {
  static const char* const kParts[] = {"the", " The", " ", "  ", "\n", "\n\n", "'s", "'ll", "123", " 4",
                                       "é", "日本", "🙂", "\xcc\x81", "\xe3\x80\x80", "\xc2\xa0", ",", "!?",
                                       "\xff", "\xc3", "\xed\xa0\x80", "<|endoftext|>", "\t", "x"};
  std::string s;
  while (s.size() < n) {
    if (rng() % 5 == 0) s.push_back(char(rng()));
    else s += kParts[rng() % (sizeof(kParts) / sizeof(kParts[0]))];
  }
  return s;
}

}  // namespace

TEST_F(DataTokenizer, KnownEncodings) {
  EXPECT_EQ(tok_->encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(tok_->encode(" The quick brown fox."), (Ids{383, 2068, 7586, 21831, 13}));
  EXPECT_EQ(tok_->encode(""), Ids{});
  EXPECT_EQ(tok_->vocab_size(), 50257);
  EXPECT_EQ(tok_->decode(Ids{15496, 995}), "Hello world");
}

TEST_F(DataTokenizer, TestPlansR50kBase) {
  const std::string path = tokenizer_dir() + "/TestPlans.txt";
  std::istringstream in(read_bytes(path));
  ASSERT_FALSE(in.str().empty()) << "missing " << path;
  std::string line, name, sample;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.rfind("EncodingName: ", 0) == 0) name = line.substr(14);
    else if (line.rfind("Sample: ", 0) == 0) sample = line.substr(8);
    else if (line.rfind("Encoded: ", 0) == 0 && name == "r50k_base") {
      Ids want;
      for (auto& v : nlohmann::json::parse(line.substr(9))) want.push_back(v.get<int32_t>());
      EXPECT_EQ(tok_->encode(sample), want) << "sample: " << sample;
      EXPECT_EQ(tok_->decode(want), sample);
      ++cases;
    }
  }
  EXPECT_EQ(cases, 64);
}

TEST_F(DataTokenizer, EndOfText) {
  const std::string text = "a<|endoftext|>b<|endoftext|>";
  const Ids plain = tok_->encode(text);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), Tokenizer::kEndOfText), 0);
  EXPECT_EQ(tok_->decode(plain), text);
  const Ids special = tok_->encode_with_special(text);
  EXPECT_EQ(special, (Ids{tok_->encode("a")[0], 50256, tok_->encode("b")[0], 50256}));
  EXPECT_EQ(tok_->decode(special), text);
  EXPECT_EQ(tok_->token_bytes(50256), "<|endoftext|>");
  EXPECT_EQ(tok_->encode_with_special("<|endoftext|><|endoftext|>"), (Ids{50256, 50256}));
  EXPECT_THROW(tok_->decode(Ids{50257}), std::out_of_range);
  EXPECT_THROW(tok_->decode(Ids{-1}), std::out_of_range);
}

TEST_F(DataTokenizer, RoundTripArbitraryBytes) {
  for (uint64_t seed : {3u, 141u, 5926u}) {
    std::mt19937_64 rng(seed);
    for (int rep = 0; rep < 40; ++rep) {
      std::string s(rng() % 2000 + 1, '\0');
      for (auto& c : s) c = char(rng());
      ASSERT_EQ(tok_->decode(tok_->encode(s)), s) << "seed " << seed << " rep " << rep;
      const std::string t = random_text(rng, rng() % 3000 + 1);
      ASSERT_EQ(tok_->decode(tok_->encode(t)), t) << "seed " << seed << " rep " << rep;
      ASSERT_EQ(tok_->decode(tok_->encode_with_special(t)), t);
    }
  }
}

TEST_F(DataTokenizer, CacheDoesNotChangeResults) {
  std::mt19937_64 rng(99);
  EncodeCache cache;
  for (int rep = 0; rep < 30; ++rep) {
    const std::string t = random_text(rng, 500 + rng() % 500);
    Ids with_cache;
    tok_->encode_append(t, with_cache, cache);
    EXPECT_EQ(with_cache, tok_->encode(t));
  }
}

TEST_F(DataTokenizer, HeapMergeEqualsScanMerge) {
  for (uint64_t seed : {5u, 55u, 555u}) {
    std::mt19937_64 rng(seed);
    for (int rep = 0; rep < 200; ++rep) {
      // small alphabets make long merge chains and equal-rank ties
      const char* alpha = rep % 3 == 0 ? "ab" : rep % 3 == 1 ? "etaoin " : "aaaab";
      const size_t na = std::strlen(alpha);
      std::string piece(rng() % 128 + 1, 'a');
      for (auto& c : piece) c = alpha[rng() % na];
      Ids scan, heap;
      tok_->bpe(piece, scan, false);
      tok_->bpe(piece, heap, true);
      ASSERT_EQ(scan, heap) << piece;
      ASSERT_EQ(tok_->decode(heap), piece);
    }
  }
  const std::string long_piece(100000, 'a');  // the heap path keeps this fast
  EXPECT_EQ(tok_->decode(tok_->encode(long_piece)), long_piece);
}

TEST_F(DataTokenizer, AgreesWithOpenAIEncoderJson) {
  const std::string enc_path = tokenizer_dir() + "/encoder.json", bpe_path = tokenizer_dir() + "/vocab.bpe";
  const std::string enc = read_bytes(enc_path);
  ASSERT_FALSE(enc.empty()) << "missing " << enc_path;
  // GPT-2 spells bytes as printable code points: printable Latin-1 bytes as themselves, the
  // other 68 bytes as U+0100 onwards in byte order.
  std::vector<int> cp_to_byte(512, -1);
  for (int b = 0, extra = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    cp_to_byte[printable ? b : 256 + extra++] = b;
  }
  auto to_bytes = [&](const std::string& s) {  // s: UTF-8 of code points below U+0200
    std::string out;
    for (size_t i = 0; i < s.size();) {
      const unsigned c = uint8_t(s[i]);
      const unsigned cp = c < 0x80 ? c : ((c & 0x1F) << 6) | (uint8_t(s[i + 1]) & 0x3F);
      i += c < 0x80 ? 1 : 2;
      out.push_back(char(cp_to_byte.at(cp)));
    }
    return out;
  };
  const auto j = nlohmann::json::parse(enc);
  ASSERT_EQ(j.size(), 50257u);
  for (auto it = j.begin(); it != j.end(); ++it) {
    const int id = it.value().get<int>();
    if (id == Tokenizer::kEndOfText) EXPECT_EQ(it.key(), "<|endoftext|>");
    else ASSERT_EQ(tok_->token_bytes(id), to_bytes(it.key())) << "id " << id;
  }
  // vocab.bpe: merge rule i creates token 256 + i.
  std::istringstream merges(read_bytes(bpe_path));
  std::string line;
  std::getline(merges, line);  // "#version: 0.2"
  int rule = 0;
  while (std::getline(merges, line)) {
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    ASSERT_EQ(tok_->token_bytes(256 + rule), to_bytes(line.substr(0, sp)) + to_bytes(line.substr(sp + 1)));
    ++rule;
  }
  EXPECT_EQ(rule, 50000);
}

TEST_F(DataTokenizer, CorruptVocabularyNamesFile) {
  gfwa::testing::TempDir dir;
  std::string bytes = read_bytes(tokenizer_dir() + "/" + Tokenizer::kVocabFile);
  bytes[1000] ^= 1;
  gfwa::testing::write_bytes(dir.file(Tokenizer::kVocabFile), bytes);
  try {
    Tokenizer t(dir.path().string());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dir.file(Tokenizer::kVocabFile)), std::string::npos) << msg;
    EXPECT_NE(msg.find("sha256"), std::string::npos) << msg;
  }
  try {
    Tokenizer t(dir.file("nowhere"));
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere/r50k_base.tiktoken"), std::string::npos) << e.what();
  }
}

// Benchmark, not a timed test: run with --gtest_also_run_disabled_tests. Uses the Austen text of
// scripts/data/prepare_austen.sh when present, else the vocabulary's own English-like samples.
TEST_F(DataTokenizer, DISABLED_ThroughputOneCore) {
  std::string text;
  const std::filesystem::path austen = std::string(GFWA_SOURCE_DIR) + "/data/austen/text";
  if (std::filesystem::exists(austen))
    for (auto& e : std::filesystem::directory_iterator(austen)) text += read_bytes(e.path().string());
  if (text.empty()) {
    std::mt19937_64 rng(1);
    while (text.size() < (8u << 20)) text += tok_->decode(Ids{int32_t(rng() % 50000)});
  }
  EncodeCache cache;
  Ids out;
  out.reserve(text.size() / 3);
  const auto t0 = std::chrono::steady_clock::now();
  tok_->encode_append(text, out, cache);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[bench] %.2f MB in %.3f s: %.1f MB/s, %zu tokens (%s)\n", text.size() / 1e6, s,
              text.size() / 1e6 / s, out.size(), std::filesystem::exists(austen) ? "Austen" : "random tokens");
}
