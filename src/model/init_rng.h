// Portable normal random numbers for parameter initialisation. std::normal_distribution differs
// between standard libraries, so checkpoints would not be reproducible; std::mt19937_64 is fully
// specified by the standard, and the Box-Muller transform below is ours:
//   u1 = ((x1 >> 11) + 1) * 2^-53  in (0, 1],   u2 = (x2 >> 11) * 2^-53  in [0, 1)
//   r = sqrt(-2 ln u1);  first draw r cos(2 pi u2), second draw r sin(2 pi u2), then two new words.
// (Bitwise equal everywhere up to the last-ulp rounding of the platform's log/cos/sin.)
#pragma once
#include <cmath>
#include <cstdint>
#include <random>

namespace gfwa {

// The two draws of one pair of engine words (init_parameters runs this on many threads).
inline void box_muller(uint64_t x1, uint64_t x2, double* z) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  constexpr double k2m53 = 1.0 / 9007199254740992.0;  // 2^-53
  const double u1 = double((x1 >> 11) + 1) * k2m53;
  const double u2 = double(x2 >> 11) * k2m53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  z[0] = r * std::cos(kTwoPi * u2);
  z[1] = r * std::sin(kTwoPi * u2);
}

class NormalRng {
 public:
  explicit NormalRng(uint64_t seed) : engine_(seed) {}

  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const uint64_t x1 = engine_(), x2 = engine_();
    double z[2];
    box_muller(x1, x2, z);
    spare_ = z[1];
    has_spare_ = true;
    return z[0];
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace gfwa
