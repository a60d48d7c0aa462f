#include "kernels/nsa_cpu.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "kernels/attention_cpu.h"
#include "kernels/cpu_parallel.h"

namespace gfwa::cpu {
namespace {

void check(const NsaShape& s, AttnMode sliding) {
  const std::string err = nsa_shape_error(s);
  if (!err.empty()) throw std::invalid_argument(err);
  if (sliding != AttnMode::swa && sliding != AttnMode::gatedfwa)
    throw std::invalid_argument(std::string("nsa: the sliding branch must be swa or gatedfwa (got ") +
                                attn_mode_name(sliding) + ")");
}

// Row (b, t, h) of a token-major tensor with `heads` heads per token and `T` tokens per sequence.
inline size_t at(int T, int heads, int b, int t, int h) { return (size_t(b) * T + t) * heads + h; }

template <class F>
double dot(const F* a, const double* b, int n) {
  double acc = 0.0;
  for (int d = 0; d < n; ++d) acc += double(a[d]) * b[d];
  return acc;
}

// Head hk of a [B, rows, Hkv, D] tensor, sequence b, as a contiguous [rows, D] double buffer.
template <class F>
std::vector<double> gather_kv(const NsaShape& s, const F* x, int rows, int b, int hk) {
  std::vector<double> out(size_t(rows) * s.D);
  for (int t = 0; t < rows; ++t) {
    const F* src = x + at(rows, s.Hkv, b, t, hk) * s.D;
    for (int d = 0; d < s.D; ++d) out[size_t(t) * s.D + d] = double(src[d]);
  }
  return out;
}

template <class F>
std::vector<double> row_double(const F* x, int n) {
  return std::vector<double>(x, x + n);
}

// Softmax attention of one query over the listed rows of K, V; o (D values) and the returned lse.
// An empty list gives o = 0 and lse = 0 (the compressed branch before the first complete block).
double attend(const std::vector<double>& qr, const std::vector<double>& K, const std::vector<double>& V,
              const std::vector<int>& keys, int D, double scale, double* o, std::vector<double>& sc) {
  std::fill(o, o + D, 0.0);
  if (keys.empty()) return 0.0;
  sc.resize(keys.size());
  for (size_t n = 0; n < keys.size(); ++n) sc[n] = dot(&K[size_t(keys[n]) * D], qr.data(), D) * scale;
  const double m = *std::max_element(sc.begin(), sc.end());
  double sum = 0.0;
  for (size_t n = 0; n < keys.size(); ++n) {
    const double p = std::exp(sc[n] - m);
    sum += p;
    for (int d = 0; d < D; ++d) o[d] += p * V[size_t(keys[n]) * D + d];
  }
  for (int d = 0; d < D; ++d) o[d] /= sum;
  return m + std::log(sum);
}

// Backward of attend given the forward's o and lse: dq (D values) and the listed rows of dK, dV are
// accumulated.
void attend_backward(const std::vector<double>& qr, const std::vector<double>& K, const std::vector<double>& V,
                     const std::vector<int>& keys, int D, double scale, double lse, const std::vector<double>& o,
                     const std::vector<double>& dO, double* dq, std::vector<double>& dK, std::vector<double>& dV) {
  double delta = 0.0;
  for (int d = 0; d < D; ++d) delta += dO[d] * o[d];
  for (int j : keys) {
    const double* kj = &K[size_t(j) * D];
    const double p = std::exp(dot(kj, qr.data(), D) * scale - lse);
    const double ds = p * (dot(&V[size_t(j) * D], dO.data(), D) - delta);
    for (int d = 0; d < D; ++d) {
      dq[d] += ds * kj[d] * scale;
      dK[size_t(j) * D + d] += ds * qr[d] * scale;
      dV[size_t(j) * D + d] += p * dO[d];
    }
  }
}

// The keys of the compressed branch for token t, and of the selected branch for (t, group).
void compressed_keys(const NsaShape& s, int t, std::vector<int>& keys) {
  keys.resize((t + 1) / s.block);
  std::iota(keys.begin(), keys.end(), 0);
}
void selected_keys(const NsaShape& s, const int32_t* idx_row, int t, std::vector<int>& keys) {
  keys.clear();
  for (int n = 0; n < s.top_k && idx_row[n] >= 0; ++n)
    for (int j = idx_row[n] * s.block; j < std::min(t + 1, (idx_row[n] + 1) * s.block); ++j) keys.push_back(j);
}

long branch_work(const NsaShape& s) { return long(s.B) * s.T * s.H * (s.n_cmp() + s.top_k * s.block) * s.D; }

// The sliding branch: attention_cpu.h over the K/V heads of each group as they are.
AttnShape sliding_shape(const NsaShape& s) { return AttnShape{s.B, s.T, s.H, s.D, s.window, s.Hkv}; }

// The two branches that read the compressed keys or the selected blocks, for one (sequence, K/V head).
template <class F>
struct GroupBuffers {
  std::vector<double> K, V, Kc, Vc;
  GroupBuffers(const NsaShape& s, const F* k, const F* v, const F* k_cmp, const F* v_cmp, int b, int hk)
      : K(gather_kv(s, k, s.T, b, hk)),
        V(gather_kv(s, v, s.T, b, hk)),
        Kc(gather_kv(s, k_cmp, s.n_cmp(), b, hk)),
        Vc(gather_kv(s, v_cmp, s.n_cmp(), b, hk)) {}
};

}  // namespace

template <class F>
void nsa_pool(const NsaShape& s, const F* x, F* x_cmp) {
  const int Tc = s.n_cmp();
  for (int b = 0; b < s.B; ++b)
    for (int c = 0; c < Tc; ++c)
      for (int hk = 0; hk < s.Hkv; ++hk)
        for (int d = 0; d < s.D; ++d) {
          double acc = 0.0;
          for (int j = 0; j < s.block; ++j) acc += double(x[at(s.T, s.Hkv, b, c * s.block + j, hk) * s.D + d]);
          x_cmp[at(Tc, s.Hkv, b, c, hk) * s.D + d] = F(acc / s.block);
        }
}

template <class F>
void nsa_compressed_forward(const NsaShape& s, const F* q, const F* k_cmp, const F* v_cmp, F* o_cmp, F* lse_cmp) {
  const int G = s.groups(), Tc = s.n_cmp();
  const double scale = 1.0 / std::sqrt(double(s.D));
#pragma omp parallel for collapse(2) schedule(static) if (branch_work(s) >= kOmpMinWork)
  for (int b = 0; b < s.B; ++b)
    for (int hk = 0; hk < s.Hkv; ++hk) {
      const std::vector<double> Kc = gather_kv(s, k_cmp, Tc, b, hk), Vc = gather_kv(s, v_cmp, Tc, b, hk);
      std::vector<int> keys;
      std::vector<double> o(s.D), sc;
      for (int t = 0; t < s.T; ++t) {
        compressed_keys(s, t, keys);
        for (int h = hk * G; h < (hk + 1) * G; ++h) {
          const size_t r = at(s.T, s.H, b, t, h);
          lse_cmp[r] = F(attend(row_double(q + r * s.D, s.D), Kc, Vc, keys, s.D, scale, o.data(), sc));
          std::copy(o.begin(), o.end(), o_cmp + r * s.D);
        }
      }
    }
}

template <class F>
void nsa_block_importance(const NsaShape& s, const F* q, const F* k_cmp, const F* lse_cmp, int b, int t, int hk,
                          std::vector<double>& importance) {
  const int G = s.groups(), Tc = s.n_cmp();
  const double scale = 1.0 / std::sqrt(double(s.D));
  importance.assign(t / s.block, 0.0);
  for (int h = hk * G; h < (hk + 1) * G; ++h) {
    const size_t r = at(s.T, s.H, b, t, h);
    const std::vector<double> qr = row_double(q + r * s.D, s.D);
    for (int c = 0; c < t / s.block; ++c)
      importance[c] += std::exp(dot(k_cmp + at(Tc, s.Hkv, b, c, hk) * s.D, qr.data(), s.D) * scale - double(lse_cmp[r]));
  }
}

template <class F>
void nsa_select(const NsaShape& s, const F* q, const F* k_cmp, const F* lse_cmp, int32_t* idx) {
  const std::string err = nsa_shape_error(s);
  if (!err.empty()) throw std::invalid_argument(err);
#pragma omp parallel for collapse(2) schedule(static) if (long(s.B) * s.T * s.H * s.n_cmp() * s.D >= kOmpMinWork)
  for (int b = 0; b < s.B; ++b)
    for (int t = 0; t < s.T; ++t) {
      std::vector<double> imp;
      std::vector<int32_t> order;
      for (int hk = 0; hk < s.Hkv; ++hk) {
        nsa_block_importance(s, q, k_cmp, lse_cmp, b, t, hk, imp);
        order.resize(imp.size());
        std::iota(order.begin(), order.end(), 0);
        const size_t keep = std::min(order.size(), size_t(s.top_k - 1));
        std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int32_t x, int32_t y) {
          return imp[x] > imp[y] || (imp[x] == imp[y] && x < y);
        });
        order.resize(keep);
        order.push_back(t / s.block);  // the query's own block, always
        std::sort(order.begin(), order.end());
        int32_t* row = idx + at(s.T, s.Hkv, b, t, hk) * s.top_k;
        std::fill(row, row + s.top_k, -1);
        std::copy(order.begin(), order.end(), row);
      }
    }
}

template <class F>
void nsa_selected_forward(const NsaShape& s, const F* q, const F* k, const F* v, const int32_t* idx, F* o_sel,
                          F* lse_sel) {
  const int G = s.groups();
  const double scale = 1.0 / std::sqrt(double(s.D));
#pragma omp parallel for collapse(2) schedule(static) if (branch_work(s) >= kOmpMinWork)
  for (int b = 0; b < s.B; ++b)
    for (int hk = 0; hk < s.Hkv; ++hk) {
      const std::vector<double> K = gather_kv(s, k, s.T, b, hk), V = gather_kv(s, v, s.T, b, hk);
      std::vector<int> keys;
      std::vector<double> o(s.D), sc;
      for (int t = 0; t < s.T; ++t) {
        selected_keys(s, idx + at(s.T, s.Hkv, b, t, hk) * s.top_k, t, keys);
        for (int h = hk * G; h < (hk + 1) * G; ++h) {
          const size_t r = at(s.T, s.H, b, t, h);
          lse_sel[r] = F(attend(row_double(q + r * s.D, s.D), K, V, keys, s.D, scale, o.data(), sc));
          std::copy(o.begin(), o.end(), o_sel + r * s.D);
        }
      }
    }
}

namespace {

void check_inputs(const NsaShape& s, AttnMode sliding, const void* lam) {
  check(s, sliding);
  if (sliding == AttnMode::gatedfwa && lam == nullptr)
    throw std::invalid_argument("nsa: the gatedfwa sliding branch needs lam (and dlam in the backward)");
}

// The stages before the selection: pooled K/V and the compressed branch.
template <class F>
void forward_compressed(const NsaShape& s, const NsaInputs<F>& in, NsaSaved<F>* saved) {
  const size_t n_cmp = size_t(s.B) * s.n_cmp() * s.Hkv * s.D, rows = size_t(s.B) * s.T * s.H;
  saved->k_cmp.assign(n_cmp, F(0));
  saved->v_cmp.assign(n_cmp, F(0));
  nsa_pool(s, in.k, saved->k_cmp.data());
  nsa_pool(s, in.v, saved->v_cmp.data());
  saved->o_cmp.assign(rows * s.D, F(0));
  saved->lse_cmp.assign(rows, F(0));
  nsa_compressed_forward(s, in.q, saved->k_cmp.data(), saved->v_cmp.data(), saved->o_cmp.data(),
                         saved->lse_cmp.data());
}

// The stages after it: selected and sliding branches, and the gated sum.
template <class F>
void forward_rest(const NsaShape& s, AttnMode sliding, const NsaInputs<F>& in, F* o, NsaSaved<F>* saved) {
  const size_t rows = size_t(s.B) * s.T * s.H;
  saved->o_sel.assign(rows * s.D, F(0));
  saved->lse_sel.assign(rows, F(0));
  nsa_selected_forward(s, in.q, in.k, in.v, saved->idx.data(), saved->o_sel.data(), saved->lse_sel.data());

  saved->o_win.assign(rows * s.D, F(0));
  saved->lse_win.assign(rows, F(0));
  attention_forward(sliding_shape(s), sliding, in.q, in.k, in.v, in.lam, saved->o_win.data(), saved->lse_win.data());

  for (size_t r = 0; r < rows; ++r)
    for (int d = 0; d < s.D; ++d) {
      const size_t e = r * s.D + d;
      o[e] = F(double(in.g_cmp[r]) * double(saved->o_cmp[e]) + double(in.g_sel[r]) * double(saved->o_sel[e]) +
               double(in.g_win[r]) * double(saved->o_win[e]));
    }
}

}  // namespace

template <class F>
void nsa_forward(const NsaShape& s, AttnMode sliding, const NsaInputs<F>& in, F* o, NsaSaved<F>* saved) {
  check_inputs(s, sliding, in.lam);
  forward_compressed(s, in, saved);
  saved->idx.assign(size_t(s.B) * s.T * s.Hkv * s.top_k, -1);
  nsa_select(s, in.q, saved->k_cmp.data(), saved->lse_cmp.data(), saved->idx.data());
  forward_rest(s, sliding, in, o, saved);
}

template <class F>
void nsa_forward_blocks(const NsaShape& s, AttnMode sliding, const NsaInputs<F>& in, F* o, NsaSaved<F>* saved) {
  check_inputs(s, sliding, in.lam);
  const size_t n_idx = size_t(s.B) * s.T * s.Hkv * s.top_k;
  if (saved->idx.size() != n_idx)
    throw std::invalid_argument("nsa: saved idx holds " + std::to_string(saved->idx.size()) + " entries, expected " +
                                std::to_string(n_idx) + " (B*T*Hkv*top_k)");
  forward_compressed(s, in, saved);
  forward_rest(s, sliding, in, o, saved);
}

template <class F>
void nsa_backward(const NsaShape& s, AttnMode sliding, const NsaInputs<F>& in, const NsaSaved<F>& saved,
                  const F* dout, const NsaGrads<F>& grads) {
  check_inputs(s, sliding, in.lam);
  if (sliding == AttnMode::gatedfwa && grads.dlam == nullptr)
    throw std::invalid_argument("nsa: the gatedfwa sliding branch needs dlam");
  const int G = s.groups(), Tc = s.n_cmp();
  const size_t rows = size_t(s.B) * s.T * s.H;
  const double scale = 1.0 / std::sqrt(double(s.D));

  // Gates: dg_b = dout . o_b; each branch sees dO_b = g_b * dout.
  std::vector<F> dO_win(rows * s.D);
  for (size_t r = 0; r < rows; ++r) {
    double gc = 0, gs = 0, gw = 0;
    for (int d = 0; d < s.D; ++d) {
      const size_t e = r * s.D + d;
      gc += double(dout[e]) * double(saved.o_cmp[e]);
      gs += double(dout[e]) * double(saved.o_sel[e]);
      gw += double(dout[e]) * double(saved.o_win[e]);
      dO_win[e] = F(double(in.g_win[r]) * double(dout[e]));
    }
    grads.dg_cmp[r] = F(gc);
    grads.dg_sel[r] = F(gs);
    grads.dg_win[r] = F(gw);
  }

  // Sliding branch: dq, and dk, dv already summed over each group; the other branches add to them below.
  const size_t kv_rows = size_t(s.B) * s.T * s.Hkv;
  std::vector<F> dk_win(kv_rows * s.D), dv_win(kv_rows * s.D);
  attention_backward(sliding_shape(s), sliding, in.q, in.k, in.v, in.lam, saved.o_win.data(), saved.lse_win.data(),
                     dO_win.data(), grads.dq, dk_win.data(), dv_win.data(), grads.dlam);

  // Compressed and selected branches, one task per (sequence, K/V head): it owns dq of the group's heads and
  // dk, dv of its K/V head.
#pragma omp parallel for collapse(2) schedule(static) if (branch_work(s) >= kOmpMinWork)
  for (int b = 0; b < s.B; ++b)
    for (int hk = 0; hk < s.Hkv; ++hk) {
      const GroupBuffers<F> kv(s, in.k, in.v, saved.k_cmp.data(), saved.v_cmp.data(), b, hk);
      std::vector<double> dK(kv.K.size(), 0.0), dV(dK.size(), 0.0), dKc(kv.Kc.size(), 0.0), dVc(dKc.size(), 0.0);
      std::vector<double> dq(s.D), dO(s.D);
      std::vector<int> keys;
      for (int t = 0; t < s.T; ++t)
        for (int h = hk * G; h < (hk + 1) * G; ++h) {
          const size_t r = at(s.T, s.H, b, t, h);
          const std::vector<double> qr = row_double(in.q + r * s.D, s.D);
          std::fill(dq.begin(), dq.end(), 0.0);
          for (int d = 0; d < s.D; ++d) dO[d] = double(in.g_cmp[r]) * double(dout[r * s.D + d]);
          compressed_keys(s, t, keys);
          attend_backward(qr, kv.Kc, kv.Vc, keys, s.D, scale, double(saved.lse_cmp[r]),
                          row_double(saved.o_cmp.data() + r * s.D, s.D), dO, dq.data(), dKc, dVc);
          for (int d = 0; d < s.D; ++d) dO[d] = double(in.g_sel[r]) * double(dout[r * s.D + d]);
          selected_keys(s, saved.idx.data() + at(s.T, s.Hkv, b, t, hk) * s.top_k, t, keys);
          attend_backward(qr, kv.K, kv.V, keys, s.D, scale, double(saved.lse_sel[r]),
                          row_double(saved.o_sel.data() + r * s.D, s.D), dO, dq.data(), dK, dV);
          for (int d = 0; d < s.D; ++d) grads.dq[r * s.D + d] = F(double(grads.dq[r * s.D + d]) + dq[d]);
        }
      for (int t = 0; t < s.T; ++t) {
        const size_t r = at(s.T, s.Hkv, b, t, hk);
        for (int d = 0; d < s.D; ++d) {
          double gk = dK[size_t(t) * s.D + d] + double(dk_win[r * s.D + d]);
          double gv = dV[size_t(t) * s.D + d] + double(dv_win[r * s.D + d]);
          if (t / s.block < Tc) {  // the mean pool's backward: every token of a complete block gets 1/block
            gk += dKc[size_t(t / s.block) * s.D + d] / s.block;
            gv += dVc[size_t(t / s.block) * s.D + d] / s.block;
          }
          grads.dk[r * s.D + d] = F(gk);
          grads.dv[r * s.D + d] = F(gv);
        }
      }
    }
}

#define GFWA_NSA_INSTANTIATE(F)                                                                                  \
  template void nsa_pool<F>(const NsaShape&, const F*, F*);                                                      \
  template void nsa_compressed_forward<F>(const NsaShape&, const F*, const F*, const F*, F*, F*);                \
  template void nsa_block_importance<F>(const NsaShape&, const F*, const F*, const F*, int, int, int,            \
                                        std::vector<double>&);                                                   \
  template void nsa_select<F>(const NsaShape&, const F*, const F*, const F*, int32_t*);                          \
  template void nsa_selected_forward<F>(const NsaShape&, const F*, const F*, const F*, const int32_t*, F*, F*); \
  template void nsa_forward<F>(const NsaShape&, AttnMode, const NsaInputs<F>&, F*, NsaSaved<F>*);               \
  template void nsa_forward_blocks<F>(const NsaShape&, AttnMode, const NsaInputs<F>&, F*, NsaSaved<F>*);        \
  template void nsa_backward<F>(const NsaShape&, AttnMode, const NsaInputs<F>&, const NsaSaved<F>&, const F*,   \
                                const NsaGrads<F>&);
GFWA_NSA_INSTANTIATE(float)
GFWA_NSA_INSTANTIATE(double)
#undef GFWA_NSA_INSTANTIATE

}  // namespace gfwa::cpu
