#include "kernels/adamw_cpu.h"
#include "kernels/cpu_parallel.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gfwa::cpu {

template <class F>
void adamw_update(F* p, const F* grad, F* m, F* v, size_t n, const AdamWStep& h, bool decay) {
  const double lr = h.lr, b1 = h.beta1, b2 = h.beta2, eps = h.eps, scale = h.grad_scale;
  const double bc1 = 1.0 - std::pow(b1, double(h.t)), bc2 = 1.0 - std::pow(b2, double(h.t));
  const double wd = decay ? h.weight_decay : 0.0;
#pragma omp parallel for schedule(static) if (long(n) * 8 >= kOmpMinWork)
  for (size_t i = 0; i < n; ++i) {
    const double g = double(grad[i]) * scale;
    const double mi = b1 * double(m[i]) + (1.0 - b1) * g;
    const double vi = b2 * double(v[i]) + (1.0 - b2) * g * g;
    m[i] = F(mi);
    v[i] = F(vi);
    const double pi = double(p[i]);
    p[i] = F(pi - lr * ((mi / bc1) / (std::sqrt(vi / bc2) + eps) + wd * pi));
  }
}

template <class F>
double sum_squares(const F* x, size_t n) {
  constexpr size_t kChunk = 4096;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(chunks);
#pragma omp parallel for schedule(static) if (long(n) >= kOmpMinWork)
  for (size_t c = 0; c < chunks; ++c) {
    double s = 0.0;
    for (size_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += double(x[i]) * double(x[i]);
    part[c] = s;
  }
  double total = 0.0;
  for (double s : part) total += s;
  return total;
}

template void adamw_update<float>(float*, const float*, float*, float*, size_t, const AdamWStep&, bool);
template void adamw_update<double>(double*, const double*, double*, double*, size_t, const AdamWStep&, bool);
template double sum_squares<float>(const float*, size_t);
template double sum_squares<double>(const double*, size_t);

}  // namespace gfwa::cpu
