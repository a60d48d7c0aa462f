#include "kernels/argmax_cpu.h"

#include "kernels/cpu_parallel.h"

namespace gfwa::cpu {

template <class F>
void argmax_rows(const F* logits, int N, int V, int32_t* out) {
#pragma omp parallel for schedule(static) if (long(N) * V >= kOmpMinWork)
  for (int n = 0; n < N; ++n) {
    const F* x = logits + long(n) * V;
    int best = 0;
    for (int j = 1; j < V; ++j)
      if (x[j] > x[best]) best = j;  // strict: the first maximum stays
    out[n] = best;
  }
}

template void argmax_rows<float>(const float*, int, int, int32_t*);
template void argmax_rows<double>(const double*, int, int, int32_t*);

}  // namespace gfwa::cpu
