// Open-addressing hash map from byte strings to uint32 values, keys copied into one pool. Built for
// the tokenizer's hot path: lookups by (pointer, length) without constructing a std::string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace gfwa {

// Fast in-memory hash (not stable across byte orders; never persist it).
inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t(n) * 0xFF51AFD7ED558CCDull);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  if (n) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0x94D049BB133111EBull;
    h ^= h >> 29;
  }
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 32);
}

class ByteStringMap {
 public:
  explicit ByteStringMap(size_t expected = 1024) { reset(expected); }

  const uint32_t* find(const char* p, size_t n) const {
    const uint64_t h = hash_bytes(p, n);
    const uint32_t tag = uint32_t(h >> 32);
    for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == 0) return nullptr;
      if (s.tag == tag && s.len == n && std::memcmp(pool_.data() + s.off, p, n) == 0) return &s.value;
    }
  }

  // The key must be non-empty and absent.
  void insert(const char* p, size_t n, uint32_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const uint64_t h = hash_bytes(p, n);
    const uint32_t off = uint32_t(pool_.size());
    pool_.insert(pool_.end(), p, p + n);
    place(Slot{uint32_t(h >> 32), off, uint32_t(n), value}, h);
    ++size_;
  }

  size_t size() const { return size_; }
  size_t pool_bytes() const { return pool_.size(); }
  void reset(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    pool_.clear();
    size_ = 0;
  }

 private:
  struct Slot {
    uint32_t tag = 0, off = 0, len = 0, value = 0;  // len == 0: empty
  };
  void place(const Slot& s, uint64_t h) {
    size_t i = size_t(h) & mask_;
    while (slots_[i].len != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    mask_ = slots_.size() - 1;
    for (const Slot& s : old)
      if (s.len) place(s, hash_bytes(pool_.data() + s.off, s.len));
  }

  std::vector<Slot> slots_;
  std::vector<char> pool_;
  size_t mask_ = 0, size_ = 0;
};

}  // namespace gfwa
