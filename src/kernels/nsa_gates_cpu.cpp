#include "kernels/nsa_gates_cpu.h"

#include <cmath>
#include <cstddef>

namespace gfwa::cpu {

template <class F>
void nsa_gates_forward(const F* pre, int N, int H, F* g) {
  const size_t NH = size_t(N) * H;
  for (size_t r = 0; r < NH; ++r)  // r = n * H + h
    for (int b = 0; b < 3; ++b) g[b * NH + r] = F(1.0 / (1.0 + std::exp(-double(pre[r * 3 + b]))));
}

template <class F>
void nsa_gates_backward(const F* g, const F* dg, int N, int H, F* dpre) {
  const size_t NH = size_t(N) * H;
  for (size_t r = 0; r < NH; ++r)
    for (int b = 0; b < 3; ++b) {
      const F s = g[b * NH + r];
      dpre[r * 3 + b] = dg[b * NH + r] * s * (F(1) - s);
    }
}

template void nsa_gates_forward<float>(const float*, int, int, float*);
template void nsa_gates_forward<double>(const double*, int, int, double*);
template void nsa_gates_backward<float>(const float*, const float*, int, int, float*);
template void nsa_gates_backward<double>(const double*, const double*, int, int, double*);

}  // namespace gfwa::cpu
