#include "kernels/attention_cpu.h"
#include "kernels/cpu_parallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace gfwa::cpu {
namespace {

// Row (b, t, h) of a token-major tensor with `heads` heads per token.
inline size_t tok(const AttnShape& s, int heads, int b, int t, int h) { return (size_t(b) * s.T + t) * heads + h; }

inline double dot(const double* a, const double* b, int n) {
  double acc = 0.0;
  for (int d = 0; d < n; ++d) acc += a[d] * b[d];
  return acc;
}

void check_heads(const AttnShape& s, AttnMode mode) {
  if (!attention_kernel_mode(mode))
    throw std::invalid_argument(std::string("attention: mode ") + attn_mode_name(mode) +
                                " is not an attention kernel's (NSA is kernels/nsa_cpu.h)");
  if (s.H < 1 || s.Hkv < 1 || s.H % s.Hkv != 0)
    throw std::invalid_argument("attention: the K/V heads (" + std::to_string(s.Hkv) + ") must divide the " +
                                std::to_string(s.H) + " query heads");
}

// Gathers head h of x (`heads` heads per token) into a contiguous double buffer so the inner loops stay
// simple and exact.
template <class F>
void gather_head(const AttnShape& s, const F* x, int heads, int b, int h, std::vector<double>& out) {
  out.resize(size_t(s.T) * s.D);
  for (int t = 0; t < s.T; ++t) {
    const F* src = x + tok(s, heads, b, t, h) * s.D;
    for (int d = 0; d < s.D; ++d) out[size_t(t) * s.D + d] = double(src[d]);
  }
}

template <class F>
void gather_lam(const AttnShape& s, AttnMode mode, const F* lam, int b, int h, std::vector<double>& out) {
  out.assign(s.T, 0.0);
  if (mode != AttnMode::gatedfwa) return;
  for (int t = 0; t < s.T; ++t) out[t] = double(lam[tok(s, s.H, b, t, h)]);
}

// Logits of row i over its window [j0, i] (written to sc[j - j0]).
void row_logits(const AttnShape& s, const std::vector<double>& Q, const std::vector<double>& K,
                const std::vector<double>& L, int i, int j0, double scale, std::vector<double>& sc) {
  sc.resize(i - j0 + 1);
  for (int j = j0; j <= i; ++j)
    sc[j - j0] = dot(&Q[size_t(i) * s.D], &K[size_t(j) * s.D], s.D) * scale + (L[i] - L[j]);
}

}  // namespace

// One task per (sequence, query head); each reads its K/V head in place of a copy per query head.
template <class F>
void attention_forward(const AttnShape& s, AttnMode mode, const F* q, const F* k, const F* v, const F* lam,
                       F* o, F* lse) {
  check_heads(s, mode);
  const int W = effective_window(mode, s.window, s.T), G = s.H / s.Hkv;
  const double scale = 1.0 / std::sqrt(double(s.D));
#pragma omp parallel for collapse(2) schedule(static) if (long(s.B) * s.H * s.T * std::min(W, s.T) * s.D >= kOmpMinWork)
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      std::vector<double> Q, K, V, L, sc, acc(s.D);
      gather_head(s, q, s.H, b, h, Q);
      gather_head(s, k, s.Hkv, b, h / G, K);
      gather_head(s, v, s.Hkv, b, h / G, V);
      gather_lam(s, mode, lam, b, h, L);
      for (int i = 0; i < s.T; ++i) {
        const int j0 = std::max(0, i - W + 1);
        row_logits(s, Q, K, L, i, j0, scale, sc);
        const double m = *std::max_element(sc.begin(), sc.end());
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int j = j0; j <= i; ++j) {
          const double p = std::exp(sc[j - j0] - m);
          sum += p;
          for (int d = 0; d < s.D; ++d) acc[d] += p * V[size_t(j) * s.D + d];
        }
        F* orow = o + tok(s, s.H, b, i, h) * s.D;
        for (int d = 0; d < s.D; ++d) orow[d] = F(acc[d] / sum);
        lse[(size_t(b) * s.H + h) * s.T + i] = F(m + std::log(sum));
      }
    }
}

// One task per (sequence, K/V head): its query heads run in order, adding into one dK/dV accumulator, so the
// sum over the group has a fixed order and no two threads write the same dk/dv row.
template <class F>
void attention_backward(const AttnShape& s, AttnMode mode, const F* q, const F* k, const F* v, const F* lam,
                        const F* o, const F* lse, const F* dout, F* dq, F* dk, F* dv, F* dlam) {
  check_heads(s, mode);
  const int W = effective_window(mode, s.window, s.T), G = s.H / s.Hkv;
  const double scale = 1.0 / std::sqrt(double(s.D));
#pragma omp parallel for collapse(2) schedule(static) if (long(s.B) * s.H * s.T * std::min(W, s.T) * s.D >= kOmpMinWork)
  for (int b = 0; b < s.B; ++b)
    for (int kh = 0; kh < s.Hkv; ++kh) {
      std::vector<double> Q, K, V, O, dO, L, sc;
      gather_head(s, k, s.Hkv, b, kh, K);
      gather_head(s, v, s.Hkv, b, kh, V);
      std::vector<double> dQ(size_t(s.T) * s.D), dK(dQ.size(), 0.0), dV(dQ.size(), 0.0), dL(s.T);
      for (int h = kh * G; h < (kh + 1) * G; ++h) {
        gather_head(s, q, s.H, b, h, Q);
        gather_head(s, o, s.H, b, h, O);
        gather_head(s, dout, s.H, b, h, dO);
        gather_lam(s, mode, lam, b, h, L);
        std::fill(dQ.begin(), dQ.end(), 0.0);
        std::fill(dL.begin(), dL.end(), 0.0);
        for (int i = 0; i < s.T; ++i) {
          const int j0 = std::max(0, i - W + 1);
          row_logits(s, Q, K, L, i, j0, scale, sc);
          const double row_lse = double(lse[(size_t(b) * s.H + h) * s.T + i]);
          const double* dOi = &dO[size_t(i) * s.D];
          const double delta = dot(dOi, &O[size_t(i) * s.D], s.D);
          for (int j = j0; j <= i; ++j) {
            const double p = std::exp(sc[j - j0] - row_lse);
            const double dp = dot(dOi, &V[size_t(j) * s.D], s.D);
            const double ds = p * (dp - delta);
            for (int d = 0; d < s.D; ++d) {
              dV[size_t(j) * s.D + d] += p * dOi[d];
              dQ[size_t(i) * s.D + d] += ds * K[size_t(j) * s.D + d] * scale;
              dK[size_t(j) * s.D + d] += ds * Q[size_t(i) * s.D + d] * scale;
            }
            dL[i] += ds;  // sums to ~0 over j: softmax ignores a per-row shift
            dL[j] -= ds;
          }
        }
        for (int t = 0; t < s.T; ++t) {
          const size_t base = tok(s, s.H, b, t, h) * s.D;
          for (int d = 0; d < s.D; ++d) dq[base + d] = F(dQ[size_t(t) * s.D + d]);
          if (mode == AttnMode::gatedfwa && dlam) dlam[tok(s, s.H, b, t, h)] = F(dL[t]);
        }
      }
      for (int t = 0; t < s.T; ++t) {
        const size_t base = tok(s, s.Hkv, b, t, kh) * s.D;
        for (int d = 0; d < s.D; ++d) {
          dk[base + d] = F(dK[size_t(t) * s.D + d]);
          dv[base + d] = F(dV[size_t(t) * s.D + d]);
        }
      }
    }
}

template void attention_forward<float>(const AttnShape&, AttnMode, const float*, const float*, const float*,
                                       const float*, float*, float*);
template void attention_forward<double>(const AttnShape&, AttnMode, const double*, const double*, const double*,
                                        const double*, double*, double*);
template void attention_backward<float>(const AttnShape&, AttnMode, const float*, const float*, const float*,
                                        const float*, const float*, const float*, const float*, float*, float*,
                                        float*, float*);
template void attention_backward<double>(const AttnShape&, AttnMode, const double*, const double*, const double*,
                                         const double*, const double*, const double*, const double*, double*,
                                         double*, double*, double*);

}  // namespace gfwa::cpu
