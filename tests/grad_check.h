// Finite-difference gradient checks in double, shared by the cpu layer and model tests.
//
// Tolerance: the checked functions are O(1..10) in magnitude and evaluated in double (relative
// rounding ~1e-15). A central difference with step h has truncation error h^2/6 * |f'''| (~1e-11 for
// h = 1e-5 and O(1) third derivatives) and rounding error ~1e-15 * |f| / h (~1e-9 at worst), so a
// correct gradient lands within |fd - an| <= 1e-6 * max(|fd|, |an|) + 1e-7. A wrong term (missing
// path, sign, factor, off-by-one position) moves the gradient by far more than that.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/init_rng.h"

namespace gfwa::testing {

constexpr double kFdStep = 1e-5, kFdRtol = 1e-6, kFdAtol = 1e-7;

inline std::vector<double> randn(size_t n, uint64_t seed, double sd = 1.0, double mean = 0.0) {
  NormalRng rng(seed);
  std::vector<double> x(n);
  for (auto& v : x) v = mean + sd * rng.next();
  return x;
}

// Central difference of f at x[i] (x restored afterwards).
inline double fd_entry(double* x, size_t i, const std::function<double()>& f, double h = kFdStep) {
  const double x0 = x[i];
  x[i] = x0 + h;
  const double fp = f();
  x[i] = x0 - h;
  const double fm = f();
  x[i] = x0;
  return (fp - fm) / (2 * h);
}

inline bool grad_close(double fd, double an) {
  return std::fabs(fd - an) <= kFdRtol * std::max(std::fabs(fd), std::fabs(an)) + kFdAtol;
}

// Checks analytic[i] against the central difference of f w.r.t. x[i], for every i.
inline void expect_grad(double* x, const std::vector<double>& analytic, const std::function<double()>& f,
                        const std::string& what) {
  for (size_t i = 0; i < analytic.size(); ++i) {
    const double fd = fd_entry(x, i, f);
    EXPECT_TRUE(grad_close(fd, analytic[i])) << what << "[" << i << "]: fd " << fd << " analytic " << analytic[i];
  }
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace gfwa::testing
