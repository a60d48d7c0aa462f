#include "kernels/rope_cpu.h"
#include "kernels/cpu_parallel.h"

#include <cmath>
#include <vector>

namespace gfwa::cpu {
namespace {

double rope_freq(int i, int D, double theta) { return std::pow(theta, -2.0 * i / D); }

// cos/sin of every (t, i) angle, [T, D/2] each; shared by all batches and heads.
void rope_tables(int T, int D, double theta, std::vector<double>& cs, std::vector<double>& sn) {
  const int half = D / 2;
  cs.resize(size_t(T) * half);
  sn.resize(cs.size());
  for (int i = 0; i < half; ++i) {
    const double freq = rope_freq(i, D, theta);
    for (int t = 0; t < T; ++t) {
      cs[size_t(t) * half + i] = std::cos(t * freq);
      sn[size_t(t) * half + i] = std::sin(t * freq);
    }
  }
}

// Rotates the H heads of one token by the angles cs/sn [D/2]; sign -1 applies the inverse.
template <class F>
void rotate_token(F* y, const F* x, int H, int D, const double* cs, const double* sn, double sign) {
  const int half = D / 2;
  for (int h = 0; h < H; ++h) {
    const size_t base = size_t(h) * D;
    for (int i = 0; i < half; ++i) {
      const double c = cs[i], s = sign * sn[i];
      const double x1 = double(x[base + i]), x2 = double(x[base + i + half]);
      y[base + i] = F(x1 * c - x2 * s);
      y[base + i + half] = F(x1 * s + x2 * c);
    }
  }
}

// sign = +1 rotates forward, -1 applies the transpose (inverse) rotation.
template <class F>
void rotate(F* y, const F* x, int B, int T, int H, int D, double theta, double sign) {
  std::vector<double> cs, sn;
  rope_tables(T, D, theta, cs, sn);
  const int half = D / 2;
#pragma omp parallel for collapse(2) schedule(static) if (long(B) * T * H * D * 2 >= kOmpMinWork)
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const size_t base = (size_t(b) * T + t) * H * D;
      rotate_token(y + base, x + base, H, D, &cs[size_t(t) * half], &sn[size_t(t) * half], sign);
    }
}

}  // namespace

template <class F>
void rope_forward(F* y, const F* x, int B, int T, int H, int D, double theta) {
  rotate(y, x, B, T, H, D, theta, 1.0);
}

template <class F>
void rope_backward(F* dx, const F* dy, int B, int T, int H, int D, double theta) {
  rotate(dx, dy, B, T, H, D, theta, -1.0);
}

template <class F>
void rope_forward_at(F* y, const F* x, const long long* pos, int N, int H, int D, double theta) {
  const int half = D / 2;
  std::vector<double> cs(half), sn(half);
  for (int n = 0; n < N; ++n) {
    for (int i = 0; i < half; ++i) {
      const double a = double(pos[n]) * rope_freq(i, D, theta);
      cs[i] = std::cos(a);
      sn[i] = std::sin(a);
    }
    rotate_token(y + size_t(n) * H * D, x + size_t(n) * H * D, H, D, cs.data(), sn.data(), 1.0);
  }
}

template void rope_forward<float>(float*, const float*, int, int, int, int, double);
template void rope_forward<double>(double*, const double*, int, int, int, int, double);
template void rope_forward_at<float>(float*, const float*, const long long*, int, int, int, double);
template void rope_forward_at<double>(double*, const double*, const long long*, int, int, int, double);
template void rope_backward<float>(float*, const float*, int, int, int, int, double);
template void rope_backward<double>(double*, const double*, int, int, int, int, double);

}  // namespace gfwa::cpu
