// A tiny, fully specified RNG for data order (std:: distributions differ between standard
// libraries, and a resumed run must see the same order on any machine).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace gfwa {

// SplitMix64's output function: a bijective 64-bit mix.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : s_(seed) {}
  uint64_t next() { return mix64(s_ += 0x9E3779B97F4A7C15ull); }
  // Uniform in [0, n), n > 0, without modulo bias (rejects the top partial range).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next(); while (x >= limit);
    return x % n;
  }

 private:
  uint64_t s_;
};

// Fisher-Yates shuffle of v with a generator seeded by seed.
template <class T>
void shuffle_with_seed(std::vector<T>& v, uint64_t seed) {
  SplitMix64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.below(i))]);
}

}  // namespace gfwa
