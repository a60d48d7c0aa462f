#include "data/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "data/pretokenizer.h"
#include "io/files.h"
#include "data/sha256.h"

namespace gfwa {
namespace {

constexpr size_t kScanMax = 128;               // longer pieces use the heap-based merge
constexpr size_t kCacheMaxPiece = 256;         // longer pieces are not memoized
constexpr size_t kCacheMaxEntries = 1 << 18;
constexpr size_t kCacheMaxTokens = 1 << 22;


int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with '=' padding; false on any malformed input.
bool base64_decode(std::string_view s, std::string& out) {
  out.clear();
  if (s.empty() || s.size() % 4 != 0) return false;
  size_t pad = s.size() - s.find_last_not_of('=') - 1;
  if (pad > 2) return false;
  uint32_t acc = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    int v = i >= s.size() - pad ? 0 : base64_value(s[i]);
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    if (i % 4 == 3) {
      out.push_back(char(acc >> 16));
      out.push_back(char(acc >> 8));
      out.push_back(char(acc));
      acc = 0;
    }
  }
  out.resize(out.size() - pad);
  return true;
}

}  // namespace

Tokenizer::Tokenizer(const std::string& dir) : ranks_(kEndOfText) {
  const std::string path = dir + "/" + kVocabFile;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error(path + ": cannot open for reading (fetch it with scripts/data/fetch_tokenizer.sh)");
  const std::string content = read_file(path);
  const std::string sum = sha256_hex(content);
  if (sum != kVocabSha256)
    throw std::runtime_error(path + ": sha256 " + sum + " does not match the expected " + kVocabSha256 +
                             " (re-fetch with scripts/data/fetch_tokenizer.sh)");
  std::fill(std::begin(byte_rank_), std::end(byte_rank_), -1);
  offsets_.reserve(kEndOfText + 2);
  std::string tok;
  size_t pos = 0, line = 0;
  while (pos < content.size()) {
    size_t eol = content.find('\n', pos);
    if (eol == std::string::npos) eol = content.size();
    std::string_view l(content.data() + pos, eol - pos);
    pos = eol + 1;
    ++line;
    const size_t sp = l.find(' ');
    const std::string where = path + ":" + std::to_string(line) + ": ";
    if (sp == std::string_view::npos || !base64_decode(l.substr(0, sp), tok))
      throw std::runtime_error(where + "expected '<base64> <rank>'");
    if (std::string(l.substr(sp + 1)) != std::to_string(offsets_.size()))
      throw std::runtime_error(where + "rank is not " + std::to_string(offsets_.size()));
    if (offsets_.size() >= size_t(kEndOfText)) throw std::runtime_error(where + "more than 50256 tokens");
    if (ranks_.find(tok.data(), tok.size())) throw std::runtime_error(where + "duplicate token");
    if (tok.size() == 1) byte_rank_[uint8_t(tok[0])] = int32_t(offsets_.size());
    ranks_.insert(tok.data(), tok.size(), uint32_t(offsets_.size()));
    offsets_.push_back(uint32_t(bytes_.size()));
    bytes_ += tok;
  }
  if (offsets_.size() != size_t(kEndOfText)) throw std::runtime_error(path + ": expected 50256 tokens");
  for (int b = 0; b < 256; ++b)
    if (byte_rank_[b] < 0) throw std::runtime_error(path + ": byte " + std::to_string(b) + " has no token");
  offsets_.push_back(uint32_t(bytes_.size()));  // <|endoftext|>
  bytes_ += kEndOfTextText;
  offsets_.push_back(uint32_t(bytes_.size()));
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("token id " + std::to_string(id) + " is outside [0, " + std::to_string(vocab_size()) + ")");
  return std::string_view(bytes_.data() + offsets_[id], offsets_[id + 1] - offsets_[id]);
}

std::string Tokenizer::decode(const int32_t* ids, size_t n) const {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += token_bytes(ids[i]);
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  EncodeCache cache;
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 4);
  encode_append(text, out, cache);
  return out;
}

std::vector<int32_t> Tokenizer::encode_with_special(std::string_view text) const {
  EncodeCache cache;
  std::vector<int32_t> out;
  const std::string_view special(kEndOfTextText);
  for (size_t pos = 0;;) {
    const size_t hit = text.find(special, pos);
    encode_append(text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos), out, cache);
    if (hit == std::string_view::npos) break;
    out.push_back(kEndOfText);
    pos = hit + special.size();
  }
  return out;
}

void Tokenizer::encode_append(std::string_view text, std::vector<int32_t>& out, EncodeCache& cache) const {
  pretokenize(text, [&](size_t off, size_t len) { encode_piece(text.data() + off, len, out, cache); });
}

void Tokenizer::encode_piece(const char* p, size_t n, std::vector<int32_t>& out, EncodeCache& cache) const {
  if (n == 1) {
    out.push_back(byte_rank_[uint8_t(*p)]);
    return;
  }
  if (const uint32_t* r = ranks_.find(p, n)) {  // whole piece is a token (as tiktoken does)
    out.push_back(int32_t(*r));
    return;
  }
  if (const uint32_t* c = cache.map_.find(p, n)) {
    const int32_t* t = cache.tokens_.data() + *c;
    out.insert(out.end(), t + 1, t + 1 + t[0]);
    return;
  }
  const size_t before = out.size();
  bpe(std::string_view(p, n), out);
  if (n > kCacheMaxPiece) return;
  if (cache.map_.size() >= kCacheMaxEntries || cache.tokens_.size() >= kCacheMaxTokens) {
    cache.map_.reset(1 << 14);
    cache.tokens_.clear();
  }
  cache.map_.insert(p, n, uint32_t(cache.tokens_.size()));
  cache.tokens_.push_back(int32_t(out.size() - before));
  cache.tokens_.insert(cache.tokens_.end(), out.begin() + before, out.end());
}

void Tokenizer::bpe(std::string_view piece, std::vector<int32_t>& out, bool force_heap) const {
  if (piece.empty()) return;
  if (force_heap || piece.size() > kScanMax) bpe_heap(piece.data(), piece.size(), out);
  else bpe_scan(piece.data(), piece.size(), out);
}

// tiktoken's algorithm: parts[i] spans [start[i], start[i+1]); pair[i] is the rank of parts i
// and i+1 joined. Each round merges the minimum pair (leftmost on ties).
void Tokenizer::bpe_scan(const char* p, size_t n, std::vector<int32_t>& out) const {
  uint32_t start[kScanMax + 1], tok[kScanMax], pair[kScanMax];
  size_t m = n;
  for (size_t i = 0; i < n; ++i) {
    start[i] = uint32_t(i);
    tok[i] = uint32_t(byte_rank_[uint8_t(p[i])]);
  }
  start[n] = uint32_t(n);
  auto join_rank = [&](size_t i) { return rank_of(p + start[i], start[i + 2] - start[i]); };
  for (size_t i = 0; i + 1 < m; ++i) pair[i] = join_rank(i);
  while (m > 1) {
    uint32_t best = kNoRank;
    size_t b = 0;
    for (size_t i = 0; i + 1 < m; ++i)
      if (pair[i] < best) best = pair[i], b = i;
    if (best == kNoRank) break;
    tok[b] = best;
    std::memmove(start + b + 1, start + b + 2, (m - b - 1) * sizeof(uint32_t));
    std::memmove(tok + b + 1, tok + b + 2, (m - b - 2) * sizeof(uint32_t));
    if (m >= b + 3) std::memmove(pair + b + 1, pair + b + 2, (m - b - 3) * sizeof(uint32_t));
    --m;
    if (b + 1 < m) pair[b] = join_rank(b);
    if (b > 0) pair[b - 1] = join_rank(b - 1);
  }
  out.insert(out.end(), tok, tok + m);
}

// Same merge order as bpe_scan in O(n log n): a doubly linked list of parts and a min-heap of
// (rank, start) pairs; entries made stale by a merge carry an old version and are skipped.
void Tokenizer::bpe_heap(const char* p, size_t n, std::vector<int32_t>& out) const {
  constexpr uint32_t kDead = 0xFFFFFFFFu;
  std::vector<uint32_t> start(n + 1), next(n), prev(n), tok(n), ver(n, 0);
  for (size_t i = 0; i < n; ++i) {
    start[i] = uint32_t(i);
    next[i] = uint32_t(i + 1);
    prev[i] = i ? uint32_t(i - 1) : kDead;
    tok[i] = uint32_t(byte_rank_[uint8_t(p[i])]);
  }
  start[n] = uint32_t(n);
  struct Entry {
    uint32_t rank, pos, node, ver;
  };
  auto later = [](const Entry& a, const Entry& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  std::vector<Entry> heap;
  auto push_pair = [&](uint32_t i) {
    const uint32_t j = next[i];
    if (j == n) return;
    const uint32_t end = next[j] == n ? uint32_t(n) : start[next[j]];
    const uint32_t r = rank_of(p + start[i], end - start[i]);
    if (r == kNoRank) return;
    heap.push_back({r, start[i], i, ver[i]});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Entry e = heap.back();
    heap.pop_back();
    if (ver[e.node] != e.ver) continue;  // stale (or dead: kDead never equals a pushed version)
    const uint32_t i = e.node, j = next[i];
    tok[i] = e.rank;
    ver[j] = kDead;
    next[i] = next[j];
    if (next[j] != n) prev[next[j]] = i;
    ++ver[i];
    push_pair(i);
    if (prev[i] != kDead) {
      ++ver[prev[i]];
      push_pair(prev[i]);
    }
  }
  for (uint32_t i = 0; i != n; i = next[i]) out.push_back(int32_t(tok[i]));
}

}  // namespace gfwa
