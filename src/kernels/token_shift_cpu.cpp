#include "kernels/token_shift_cpu.h"
#include "kernels/cpu_parallel.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gfwa::cpu {

template <class F>
void token_shift_forward(F* y, F* a, const F* k, const F* x, const F* ws, int B, int T, int H, int D, int C) {
#pragma omp parallel for collapse(2) schedule(static) if (long(B) * T * H * (C + D) >= kOmpMinWork)
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const long n = long(b) * T + t;
      const F* xr = x + n * C;
      for (int h = 0; h < H; ++h) {
        double z = 0.0;
        for (int c = 0; c < C; ++c) z += double(xr[c]) * double(ws[long(h) * C + c]);
        const F g = F(1.0 / (1.0 + std::exp(-z)));
        a[n * H + h] = g;
        const F* kt = k + (n * H + h) * D;
        F* yt = y + (n * H + h) * D;
        for (int d = 0; d < D; ++d) yt[d] = g * kt[d] + (t > 0 ? (F(1) - g) * kt[d - long(H) * D] : F(0));
      }
    }
}

// dy_t reaches k_t through a_t and k_{t+1}'s shift through (1 - a_{t+1});
// da_t = dy_t . (k_t - k_{t-1}),  dz = da * a * (1 - a).
template <class F>
void token_shift_backward(F* dk, F* dx, F* dws, const F* dy, const F* a, const F* k, const F* x, const F* ws, int B,
                          int T, int H, int D, int C) {
  const long N = long(B) * T, HD = long(H) * D;
  std::vector<F> dz(size_t(N) * H);
#pragma omp parallel for collapse(2) schedule(static) if (long(B) * T * H * (C + D) >= kOmpMinWork)
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const long n = long(b) * T + t;
      for (int h = 0; h < H; ++h) {
        const long e = n * HD + long(h) * D;
        const F g = a[n * H + h];
        const F g_next = t + 1 < T ? a[(n + 1) * H + h] : F(1);  // no next token: nothing flows back
        double da = 0.0;
        for (int d = 0; d < D; ++d) {
          const F prev = t > 0 ? k[e - HD + d] : F(0);
          da += double(dy[e + d]) * double(k[e + d] - prev);
          dk[e + d] += g * dy[e + d] + (t + 1 < T ? (F(1) - g_next) * dy[e + HD + d] : F(0));
        }
        dz[n * H + h] = F(da * double(g) * (1.0 - double(g)));
      }
      F* dxr = dx + n * C;
      for (int h = 0; h < H; ++h)
        for (int c = 0; c < C; ++c) dxr[c] += dz[n * H + h] * ws[long(h) * C + c];
    }
  constexpr int kBlock = 16;
#pragma omp parallel for schedule(static) if (long(B) * T * H * C >= kOmpMinWork)
  for (int c0 = 0; c0 < C; c0 += kBlock) {
    const int c1 = std::min(C, c0 + kBlock);
    for (long n = 0; n < N; ++n)
      for (int h = 0; h < H; ++h)
        for (int c = c0; c < c1; ++c) dws[long(h) * C + c] += dz[n * H + h] * x[n * C + c];
  }
}

template void token_shift_forward<float>(float*, float*, const float*, const float*, const float*, int, int, int,
                                         int, int);
template void token_shift_forward<double>(double*, double*, const double*, const double*, const double*, int, int,
                                          int, int, int);
template void token_shift_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                          const float*, const float*, int, int, int, int, int);
template void token_shift_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                           const double*, const double*, int, int, int, int, int);

}  // namespace gfwa::cpu
