#include "kernels/embedding_cpu.h"
#include "kernels/cpu_parallel.h"

#include <algorithm>

namespace gfwa::cpu {

template <class F>
void embedding_forward(F* y, const int32_t* tokens, const F* E, int N, int C) {
#pragma omp parallel for schedule(static) if (long(N) * C >= kOmpMinWork)
  for (int n = 0; n < N; ++n) std::copy_n(E + long(tokens[n]) * C, C, y + long(n) * C);
}

template <class F>
void embedding_backward(F* dE, const int32_t* tokens, const F* dy, int N, int C) {
  constexpr int kBlock = 16;
#pragma omp parallel for schedule(static) if (long(N) * C >= kOmpMinWork)
  for (int c0 = 0; c0 < C; c0 += kBlock) {
    const int c1 = std::min(C, c0 + kBlock);
    for (int n = 0; n < N; ++n)
      for (int c = c0; c < c1; ++c) dE[long(tokens[n]) * C + c] += dy[long(n) * C + c];
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int, int);
template void embedding_forward<double>(double*, const int32_t*, const double*, int, int);
template void embedding_backward<float>(float*, const int32_t*, const float*, int, int);
template void embedding_backward<double>(double*, const int32_t*, const double*, int, int);

}  // namespace gfwa::cpu
