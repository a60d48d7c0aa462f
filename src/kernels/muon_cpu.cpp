#include "kernels/muon_cpu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/adamw_cpu.h"
#include "kernels/matmul_cpu.h"

namespace gfwa::cpu {

namespace {

// t[c * rows + r] = x[r * cols + c]
template <class F>
void transpose(const F* x, F* t, int rows, int cols) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t[size_t(c) * rows + r] = x[size_t(r) * cols + c];
}

}  // namespace

template <class F>
void muon_momentum(const F* grad, F* buf, F* u, size_t n, const MuonStep& h) {
  const F mu = F(h.momentum), scale = F(h.grad_scale);
  for (size_t i = 0; i < n; ++i) {
    const F g = grad[i] * scale;
    const F b = mu * buf[i] + g;
    buf[i] = b;
    u[i] = h.nesterov ? g + mu * b : b;
  }
}

template <class F>
void newton_schulz(const F* g, F* out, int rows, int cols, int steps) {
  // X is m x n with m <= n: the matrix itself when wide, its transpose when tall.
  const bool tall = rows > cols;
  const int m = tall ? cols : rows, n = tall ? rows : cols;
  const size_t mn = size_t(m) * n, mm = size_t(m) * m;
  std::vector<F> x(mn), xt(mn), y(mn), a(mm), aa(mm), poly(mm);
  if (tall) transpose(g, x.data(), rows, cols);
  else x.assign(g, g + mn);
  const F inv = F(1.0 / (std::sqrt(sum_squares(g, mn)) + kNsEps));
  for (F& v : x) v *= inv;
  for (int s = 0; s < steps; ++s) {
    matmul_forward(a.data(), x.data(), x.data(), static_cast<const F*>(nullptr), m, n, m);  // A = X X^T
    matmul_forward(aa.data(), a.data(), a.data(), static_cast<const F*>(nullptr), m, m, m);  // A A^T = A A
    for (size_t i = 0; i < mm; ++i) poly[i] = F(kNsB) * a[i] + F(kNsC) * aa[i];
    transpose(x.data(), xt.data(), m, n);
    matmul_forward(y.data(), poly.data(), xt.data(), static_cast<const F*>(nullptr), m, m, n);  // poly X
    for (size_t i = 0; i < mn; ++i) x[i] = F(kNsA) * x[i] + y[i];
  }
  if (tall) transpose(x.data(), out, m, n);
  else std::copy(x.begin(), x.end(), out);
}

template <class F>
void muon_apply(F* p, const F* o, size_t n, const MuonStep& h, int rows, int cols) {
  const double lr = h.lr, wd = h.weight_decay, step = h.lr * muon_shape_scale(rows, cols);
  for (size_t i = 0; i < n; ++i) {
    const double pi = double(p[i]);
    p[i] = F(pi - lr * wd * pi - step * double(o[i]));
  }
}

template void muon_momentum<float>(const float*, float*, float*, size_t, const MuonStep&);
template void muon_momentum<double>(const double*, double*, double*, size_t, const MuonStep&);
template void newton_schulz<float>(const float*, float*, int, int, int);
template void newton_schulz<double>(const double*, double*, int, int, int);
template void muon_apply<float>(float*, const float*, size_t, const MuonStep&, int, int);
template void muon_apply<double>(double*, const double*, size_t, const MuonStep&, int, int);

}  // namespace gfwa::cpu
