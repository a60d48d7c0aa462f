#include "kernels/rmsnorm_cpu.h"
#include "kernels/cpu_parallel.h"

#include <algorithm>
#include <cmath>

namespace gfwa::cpu {

template <class F>
void rmsnorm_forward(F* y, F* rstd, const F* x, const F* w, int N, int C, double eps) {
#pragma omp parallel for schedule(static) if (long(N) * C * 2 >= kOmpMinWork)
  for (int n = 0; n < N; ++n) {
    const F* xr = x + long(n) * C;
    double ss = 0.0;  // the mean square is accumulated in double: C can be large
    for (int c = 0; c < C; ++c) ss += double(xr[c]) * double(xr[c]);
    const F r = F(1.0 / std::sqrt(ss / C + eps));
    F* yr = y + long(n) * C;
    for (int c = 0; c < C; ++c) yr[c] = xr[c] * r * w[c];
    rstd[n] = r;
  }
}

// With xh = x * rstd:  dx = rstd * (w*dy - xh * mean(w*dy*xh)),  dw = sum_rows dy * xh.
template <class F>
void rmsnorm_backward(F* dx, F* dw, const F* dy, const F* x, const F* w, const F* rstd, int N, int C) {
#pragma omp parallel for schedule(static) if (long(N) * C * 4 >= kOmpMinWork)
  for (int n = 0; n < N; ++n) {
    const F* xr = x + long(n) * C;
    const F* dyr = dy + long(n) * C;
    const F r = rstd[n];
    double dot = 0.0;
    for (int c = 0; c < C; ++c) dot += double(w[c]) * double(dyr[c]) * double(xr[c] * r);
    const F m = F(dot / C);
    F* dxr = dx + long(n) * C;
    for (int c = 0; c < C; ++c) dxr[c] += r * (w[c] * dyr[c] - xr[c] * r * m);
  }
  constexpr int kBlock = 16;
#pragma omp parallel for schedule(static) if (long(N) * C * 2 >= kOmpMinWork)
  for (int c0 = 0; c0 < C; c0 += kBlock) {
    const int c1 = std::min(C, c0 + kBlock);
    for (int n = 0; n < N; ++n)
      for (int c = c0; c < c1; ++c) dw[c] += dy[long(n) * C + c] * x[long(n) * C + c] * rstd[n];
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*, int,
                                      int);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*, const double*,
                                       int, int);

}  // namespace gfwa::cpu
