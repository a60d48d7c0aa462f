#include "kernels/swiglu_cpu.h"
#include "kernels/cpu_parallel.h"

#include <cmath>

namespace gfwa::cpu {

template <class F>
void swiglu_forward(F* y, const F* a, const F* b, size_t n) {
#pragma omp parallel for schedule(static) if (long(n) * 8 >= kOmpMinWork)
  for (size_t i = 0; i < n; ++i) {
    const F s = F(1) / (F(1) + std::exp(-a[i]));
    y[i] = a[i] * s * b[i];
  }
}

// SiLU'(a) = s * (1 + a * (1 - s)), s = sigmoid(a).
template <class F>
void swiglu_backward(F* da, F* db, const F* dy, const F* a, const F* b, size_t n) {
#pragma omp parallel for schedule(static) if (long(n) * 8 >= kOmpMinWork)
  for (size_t i = 0; i < n; ++i) {
    const F s = F(1) / (F(1) + std::exp(-a[i]));
    da[i] += dy[i] * b[i] * s * (F(1) + a[i] * (F(1) - s));
    db[i] += dy[i] * a[i] * s;
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, size_t);
template void swiglu_forward<double>(double*, const double*, const double*, size_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, size_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*, size_t);

}  // namespace gfwa::cpu
