#include "kernels/gate_cpu.h"
#include "kernels/cpu_parallel.h"

#include <cmath>

namespace gfwa::cpu {
namespace {

inline double log_sigmoid(double z) { return z >= 0 ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z)); }
inline double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }
inline double beta_of(double pre) { return 1.0 + (pre > 0 ? pre : std::expm1(pre)); }  // 1 + ELU(pre)

}  // namespace

double gate_log_forget(double hg, double pre) {
  const double beta = beta_of(pre);
  return log_sigmoid(beta * hg) / (beta + kGateBetaEps);
}

template <class F>
void gate_forward(int B, int T, int H, const F* hg, const F* pre, F* logf, F* lam) {
#pragma omp parallel for collapse(2) schedule(static) if (long(B) * T * H * 16 >= kOmpMinWork)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      double run = 0.0;  // the prefix sum is kept in double: it grows like T
      for (int t = 0; t < T; ++t) {
        const size_t i = (size_t(b) * T + t) * H + h;
        const double lf = gate_log_forget(double(hg[i]), double(pre[i]));
        run += lf;
        logf[i] = F(lf);
        lam[i] = F(run);
      }
    }
}

template <class F>
void gate_backward(int B, int T, int H, const F* hg, const F* pre, const F* dlam, F* dhg, F* dpre) {
#pragma omp parallel for collapse(2) schedule(static) if (long(B) * T * H * 16 >= kOmpMinWork)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      double suffix = 0.0;  // dlogf[s] = sum_{t >= s} dlam[t]
      for (int t = T - 1; t >= 0; --t) {
        const size_t i = (size_t(b) * T + t) * H + h;
        suffix += double(dlam[i]);
        const double p = double(pre[i]), g = double(hg[i]);
        const double beta = beta_of(p), den = beta + kGateBetaEps, z = beta * g;
        const double sneg = sigmoid(-z);
        const double dlf_dhg = sneg * beta / den;
        const double dlf_dbeta = sneg * g / den - log_sigmoid(z) / (den * den);
        const double dbeta_dpre = p > 0 ? 1.0 : std::exp(p);
        dhg[i] = F(suffix * dlf_dhg);
        dpre[i] = F(suffix * dlf_dbeta * dbeta_dpre);
      }
    }
}

template void gate_forward<float>(int, int, int, const float*, const float*, float*, float*);
template void gate_forward<double>(int, int, int, const double*, const double*, double*, double*);
template void gate_backward<float>(int, int, int, const float*, const float*, const float*, float*, float*);
template void gate_backward<double>(int, int, int, const double*, const double*, const double*, double*, double*);

}  // namespace gfwa::cpu
