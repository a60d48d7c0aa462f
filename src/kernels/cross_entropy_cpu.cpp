#include "kernels/cross_entropy_cpu.h"
#include "kernels/cpu_parallel.h"

#include <cmath>
#include <vector>

namespace gfwa::cpu {
namespace {

template <class F>
F row_max(const F* x, int V) {
  F m = x[0];
  for (int i = 1; i < V; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

}  // namespace

template <class F>
void cross_entropy_rows(const F* logits, const int32_t* targets, int N, int V, double* loss) {
#pragma omp parallel for schedule(static) if (long(N) * V * 4 >= kOmpMinWork)
  for (int n = 0; n < N; ++n) {
    const F* x = logits + long(n) * V;
    const F m = row_max(x, V);
    double sum = 0.0;
    for (int i = 0; i < V; ++i) sum += double(std::exp(x[i] - m));
    loss[n] = std::log(sum) - double(x[targets[n]] - m);
  }
}

template <class F>
double cross_entropy_forward(const F* logits, const int32_t* targets, int N, int V) {
  std::vector<double> loss(N);
  cross_entropy_rows(logits, targets, N, V, loss.data());
  double total = 0.0;
  for (int n = 0; n < N; ++n) total += loss[n];
  return total / N;
}

template <class F>
double cross_entropy_forward_backward(F* logits, const int32_t* targets, int N, int V, double dloss) {
  std::vector<double> loss(N);
#pragma omp parallel for schedule(static) if (long(N) * V * 4 >= kOmpMinWork)
  for (int n = 0; n < N; ++n) {
    F* x = logits + long(n) * V;
    const F m = row_max(x, V);
    const double target_logit = double(x[targets[n]] - m);
    double sum = 0.0;
    for (int i = 0; i < V; ++i) {
      x[i] = std::exp(x[i] - m);  // one exponential per element: kept for the gradient
      sum += double(x[i]);
    }
    loss[n] = std::log(sum) - target_logit;
    const F scale = F(dloss / (sum * N));
    for (int i = 0; i < V; ++i) x[i] *= scale;
    x[targets[n]] -= F(dloss / N);
  }
  double total = 0.0;
  for (int n = 0; n < N; ++n) total += loss[n];
  return total / N;
}

template void cross_entropy_rows<float>(const float*, const int32_t*, int, int, double*);
template void cross_entropy_rows<double>(const double*, const int32_t*, int, int, double*);
template double cross_entropy_forward<float>(const float*, const int32_t*, int, int);
template double cross_entropy_forward<double>(const double*, const int32_t*, int, int);
template double cross_entropy_forward_backward<float>(float*, const int32_t*, int, int, double);
template double cross_entropy_forward_backward<double>(double*, const int32_t*, int, int, double);

}  // namespace gfwa::cpu
