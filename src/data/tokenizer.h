// GPT-2 byte-level BPE (OpenAI's r50k_base: 50257 ids, <|endoftext|> = 50256), matching tiktoken.
// The vocabulary is read from r50k_base.tiktoken (one token a line: base64 of its bytes, rank),
// fetched by scripts/data/fetch_tokenizer.sh and checked against its sha256 on load.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/byte_string_map.h"

namespace gfwa {

// Memo of piece -> tokens for one thread of encoding; bounded (cleared when full).
class EncodeCache {
 public:
  EncodeCache() : map_(1 << 14) {}

 private:
  friend class Tokenizer;
  ByteStringMap map_;           // piece -> offset in tokens_ of [count, id...]
  std::vector<int32_t> tokens_;
};

class Tokenizer {
 public:
  static constexpr int32_t kEndOfText = 50256;
  static constexpr const char* kEndOfTextText = "<|endoftext|>";
  static constexpr const char* kVocabFile = "r50k_base.tiktoken";
  static constexpr const char* kVocabSha256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930";

  // Loads dir/r50k_base.tiktoken; throws std::runtime_error naming the file on a missing file,
  // a sha256 mismatch or a malformed line.
  explicit Tokenizer(const std::string& dir);

  int vocab_size() const { return kEndOfText + 1; }

  // Text is plain text: "<|endoftext|>" in it is encoded like any other characters.
  std::vector<int32_t> encode(std::string_view text) const;
  // As encode, but each "<|endoftext|>" in text becomes the single id 50256.
  std::vector<int32_t> encode_with_special(std::string_view text) const;
  // Appends the plain-text encoding of text to out; cache speeds up repeated pieces (one per thread).
  void encode_append(std::string_view text, std::vector<int32_t>& out, EncodeCache& cache) const;

  // Concatenated bytes of the ids (50256 decodes to "<|endoftext|>"); throws on an id out of range.
  std::string decode(const int32_t* ids, size_t n) const;
  std::string decode(const std::vector<int32_t>& ids) const { return decode(ids.data(), ids.size()); }
  std::string_view token_bytes(int32_t id) const;

  // BPE of one pre-token (exposed for tests): merges the lowest-ranked adjacent pair, leftmost
  // first, until none is in the vocabulary. Long pieces use a heap; force_heap selects it always.
  void bpe(std::string_view piece, std::vector<int32_t>& out, bool force_heap = false) const;

 private:
  void encode_piece(const char* p, size_t n, std::vector<int32_t>& out, EncodeCache& cache) const;
  void bpe_scan(const char* p, size_t n, std::vector<int32_t>& out) const;
  void bpe_heap(const char* p, size_t n, std::vector<int32_t>& out) const;
  uint32_t rank_of(const char* p, size_t n) const {
    const uint32_t* r = ranks_.find(p, n);
    return r ? *r : kNoRank;
  }

  static constexpr uint32_t kNoRank = 0xFFFFFFFFu;
  std::string bytes_;               // all tokens' bytes, concatenated by rank
  std::vector<uint32_t> offsets_;   // token id -> start in bytes_ (size vocab_size() + 1)
  ByteStringMap ranks_;             // bytes -> rank (= token id)
  int32_t byte_rank_[256];
};

}  // namespace gfwa
