#include "kernels/decode_cpu.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu_parallel.h"
#include "kernels/gate_cpu.h"
#include "kernels/rmsnorm_cpu.h"
#include "kernels/rope_cpu.h"

namespace gfwa::cpu {
namespace {

// The training forward's token shift (token_shift_cpu.cpp) with an explicit previous token.
template <class F>
void shift_token(F* y, const F* x, const F* prev, const F* pre, int H, int D) {
  for (int h = 0; h < H; ++h) {
    const F g = F(1.0 / (1.0 + std::exp(-double(pre[h]))));
    for (int d = 0; d < D; ++d) y[h * D + d] = g * x[h * D + d] + (F(1) - g) * prev[h * D + d];
  }
}

void check_heads(const DecodeShape& s) {
  if (!attention_kernel_mode(s.mode))
    throw std::invalid_argument(std::string("decode: mode ") + attn_mode_name(s.mode) + " has no decode path");
  if (s.H < 1 || s.Hkv < 1 || s.H % s.Hkv != 0)
    throw std::invalid_argument("decode: the K/V heads (" + std::to_string(s.Hkv) + ") must divide the " +
                                std::to_string(s.H) + " query heads");
}

}  // namespace

template <class F>
void decode_append(const DecodeShape& s, const DecodeCache<F>& c, int b, long long pos, const F* q, const F* k,
                   const F* v, const F* pre_k, const F* pre_v, const F* hg, const F* pre, const F* q_norm_w,
                   const F* k_norm_w, F* q_out) {
  check_heads(s);
  const int H = s.H, Hkv = s.Hkv, D = s.D, C = H * D, Ckv = Hkv * D;
  if (s.mode == AttnMode::full && pos >= s.cap)
    throw std::invalid_argument("decode: position " + std::to_string(pos) + " past the full-attention cache of " +
                                std::to_string(s.cap) + " tokens");
  std::vector<F> ks(k, k + Ckv), vs(v, v + Ckv), kn(Ckv);
  if (s.token_shift) {
    F* prev_k = c.shift_k + size_t(b) * Ckv;
    F* prev_v = c.shift_v + size_t(b) * Ckv;
    if (pos == 0) {  // k_{-1} = 0
      std::fill_n(prev_k, Ckv, F(0));
      std::fill_n(prev_v, Ckv, F(0));
    }
    shift_token(ks.data(), k, prev_k, pre_k, Hkv, D);
    shift_token(vs.data(), v, prev_v, pre_v, Hkv, D);
    std::copy_n(k, Ckv, prev_k);
    std::copy_n(v, Ckv, prev_v);
  }
  F rstd;
  rmsnorm_forward(q_out, &rstd, q, q_norm_w, 1, C, s.eps);
  rmsnorm_forward(kn.data(), &rstd, ks.data(), k_norm_w, 1, Ckv, s.eps);
  rope_forward_at(q_out, q_out, &pos, 1, H, D, s.theta);
  rope_forward_at(kn.data(), kn.data(), &pos, 1, Hkv, D, s.theta);

  const int e = int(pos % s.cap);
  for (int h = 0; h < Hkv; ++h) {
    const size_t row = (size_t(b) * Hkv + h) * s.cap;
    std::copy_n(kn.data() + h * D, D, c.k + (row + e) * D);
    std::copy_n(vs.data() + h * D, D, c.v + (row + e) * D);
  }
  if (s.mode != AttnMode::gatedfwa) return;
  for (int h = 0; h < H; ++h) {
    const size_t row = (size_t(b) * H + h) * s.cap;
    double& now = c.lam_now[size_t(b) * H + h];
    if (pos == 0) now = 0.0;
    if (pos > 0 && pos % s.cap == 0) {  // rebase on the newest token
      for (int j = 0; j < s.cap; ++j) c.lam[row + j] = F(double(c.lam[row + j]) - now);
      now = 0.0;
    }
    now += gate_log_forget(double(hg[h]), double(pre[h]));
    c.lam[row + e] = F(now);
  }
}

template <class F>
void decode_attention(const DecodeShape& s, const DecodeCache<F>& c, int b, long long pos, const F* q, F* o) {
  check_heads(s);
  const int H = s.H, D = s.D, G = s.H / s.Hkv;
  const long long n = std::min<long long>(pos + 1, s.cap);
  const double scale = 1.0 / std::sqrt(double(D));
  const bool gated = s.mode == AttnMode::gatedfwa;
#pragma omp parallel for schedule(static) if (long(H) * n * D * 2 >= kOmpMinWork)
  for (int h = 0; h < H; ++h) {
    const size_t row = (size_t(b) * H + h) * s.cap, kv_row = (size_t(b) * s.Hkv + h / G) * s.cap;
    const double now = gated ? c.lam_now[size_t(b) * H + h] : 0.0;
    std::vector<double> sc(static_cast<size_t>(n)), acc(size_t(D), 0.0);
    // Keys in position order (the training forward's order): positions pos-n+1 .. pos.
    for (long long t = 0; t < n; ++t) {
      const size_t e = size_t((pos - n + 1 + t) % s.cap);
      const F* kj = c.k + (kv_row + e) * D;
      double dot = 0.0;
      for (int d = 0; d < D; ++d) dot += double(q[h * D + d]) * double(kj[d]);
      sc[size_t(t)] = dot * scale + (gated ? now - double(c.lam[row + e]) : 0.0);
    }
    const double m = *std::max_element(sc.begin(), sc.end());
    double sum = 0.0;
    for (long long t = 0; t < n; ++t) {
      const size_t e = size_t((pos - n + 1 + t) % s.cap);
      const double p = std::exp(sc[size_t(t)] - m);
      sum += p;
      const F* vj = c.v + (kv_row + e) * D;
      for (int d = 0; d < D; ++d) acc[d] += p * double(vj[d]);
    }
    for (int d = 0; d < D; ++d) o[h * D + d] = F(acc[d] / sum);
  }
}

template void decode_append<float>(const DecodeShape&, const DecodeCache<float>&, int, long long, const float*,
                                   const float*, const float*, const float*, const float*, const float*, const float*,
                                   const float*, const float*, float*);
template void decode_attention<float>(const DecodeShape&, const DecodeCache<float>&, int, long long, const float*,
                                      float*);

}  // namespace gfwa::cpu
