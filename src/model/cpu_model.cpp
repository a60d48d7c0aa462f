#include "model/cpu_model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/attention_cpu.h"
#include "kernels/cpu_parallel.h"
#include "kernels/cross_entropy_cpu.h"
#include "kernels/embedding_cpu.h"
#include "kernels/gate_cpu.h"
#include "kernels/matmul_cpu.h"
#include "kernels/nsa_gates_cpu.h"
#include "kernels/rmsnorm_cpu.h"
#include "kernels/rope_cpu.h"
#include "kernels/swiglu_cpu.h"
#include "kernels/token_shift_cpu.h"
#include "model/param_init.h"

namespace gfwa {
namespace {

template <class F>
void zero(std::vector<F>& v) {
  std::fill(v.begin(), v.end(), F(0));
}

template <class F>
void add_into(F* x, const F* y, size_t n) {
#pragma omp parallel for schedule(static) if (long(n) >= cpu::kOmpMinWork)
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

template <class F>
CpuModelBytes CpuModel<F>::planned_bytes(const ModelConfig& cfg, int max_B, int max_T) {
  const double N = double(max_B) * max_T, C = cfg.d_model, H = cfg.n_heads, FH = cfg.hidden(), L = cfg.n_layers;
  const double Ckv = cfg.kv_dim(), Hkv = cfg.kv_heads();
  const bool shift = cfg.attention.token_shift;
  double gated_layers = 0, nsa_layers = 0;
  for (int l = 0; l < cfg.n_layers; ++l) {
    gated_layers += cfg.layer_gated(l);
    nsa_layers += cfg.layer_nsa(l);
  }
  const double per_layer =
      6 * N * C + 3 * N * Ckv + 4 * N + 3 * N * FH + N * H + (shift ? 2 * N * Ckv + 2 * N * Hkv : 0);
  // An nsa layer keeps its gates and the core's saved tensors (block means, three branch outputs and
  // log-sum-exps, the int32 block ids) instead of one log-sum-exp; its backward's temporaries are scratch.
  const double nsa_layer =
      3 * N * H + 2 * std::floor(N / cfg.attention.nsa.block) * Ckv + 3 * N * C + 3 * N * H - N * H;
  const double nsa_idx_bytes = N * Hkv * cfg.attention.nsa.top_k * sizeof(int32_t);
  CpuModelBytes b;
  b.params = 2 * double(ParamLayout(cfg).total()) * sizeof(F);
  b.activations = ((L + 1) * N * C + L * per_layer + gated_layers * 4 * N * H + nsa_layers * nsa_layer + N * C + N) *
                      sizeof(F) +
                  nsa_layers * nsa_idx_bytes;
  b.logits = N * cfg.vocab_size * sizeof(F);
  const double nsa_scratch = nsa_layers > 0 ? 6 * N * H + N * C + 2 * N * Ckv : 0;
  b.scratch = (6 * N * C + 5 * N * Ckv + 3 * N * H + 3 * N * FH + nsa_scratch) * sizeof(F);
  return b;
}

template <class F>
CpuModel<F>::CpuModel(const ModelConfig& cfg, int max_B, int max_T)
    : cfg_(cfg), layout_(cfg), max_B_(max_B), max_T_(max_T) {
  if (max_B < 1 || max_T < 1)
    throw std::invalid_argument("CpuModel: max_B and max_T must be >= 1 (got " + std::to_string(max_B) + ", " +
                                std::to_string(max_T) + ")");
  if (cfg.n_heads < 1 || cfg.d_model % cfg.n_heads != 0 || cfg.head_dim() % 2 != 0)
    throw std::invalid_argument("CpuModel: d_model " + std::to_string(cfg.d_model) + " must split into n_heads " +
                                std::to_string(cfg.n_heads) + " heads of even size (RoPE pairs)");
  if (cfg.n_kv_heads < 0 || cfg.n_heads % cfg.kv_heads() != 0)
    throw std::invalid_argument("CpuModel: n_kv_heads " + std::to_string(cfg.n_kv_heads) + " must divide n_heads " +
                                std::to_string(cfg.n_heads));
  const std::string pattern = attention_pattern_problem(cfg);
  if (!pattern.empty()) throw std::invalid_argument("CpuModel: model.attention.pattern: " + pattern);
  const std::string nsa = nsa_config_problem(cfg);
  if (!nsa.empty()) throw std::invalid_argument("CpuModel: " + nsa);
  for (int l = 0; l < cfg.n_layers; ++l) {
    const LayerAttention a = cfg.layer_attention(l);
    if (a.mode != AttnMode::full && a.window < 1)
      throw std::invalid_argument("CpuModel: layer " + std::to_string(l) + ": attention window must be >= 1 (got " +
                                  std::to_string(a.window) + ")");
  }
  const size_t N = size_t(max_B) * max_T, C = cfg.d_model, H = cfg.n_heads, FH = cfg.hidden();
  const size_t Ckv = cfg.kv_dim(), Hkv = cfg.kv_heads();
  const bool shift = cfg.attention.token_shift;
  params_.assign(layout_.total(), F(0));
  grads_.assign(layout_.total(), F(0));
  resid_.assign(cfg.n_layers + 1, std::vector<F>(N * C));
  acts_.resize(cfg.n_layers);
  for (int l = 0; l < cfg.n_layers; ++l) {
    LayerActs& a = acts_[size_t(l)];
    for (auto* v : {&a.h, &a.qp, &a.q, &a.o, &a.x_mid, &a.h2}) v->resize(N * C);
    for (auto* v : {&a.k0, &a.v0, &a.k}) v->resize(N * Ckv);
    for (auto* v : {&a.rstd1, &a.rstd_q, &a.rstd_k, &a.rstd2}) v->resize(N);
    for (auto* v : {&a.a1, &a.a3, &a.g}) v->resize(N * FH);
    if (cfg.layer_nsa(l))
      a.gates.resize(3 * N * H);
    else
      a.lse.resize(N * H);
    if (shift) {
      a.ks.resize(N * Ckv);
      a.vs.resize(N * Ckv);
      a.ak.resize(N * Hkv);
      a.av.resize(N * Hkv);
    }
    if (cfg.layer_gated(l))
      for (auto* v : {&a.hg, &a.pre, &a.logf, &a.lam}) v->resize(N * H);
  }
  lnf_.resize(N * C);
  rstdf_.resize(N);
  logits_.resize(N * size_t(cfg.vocab_size));
  for (auto* v : {&tmp_, &dx_, &dh_, &dout_, &dq_, &dqp_}) v->resize(N * C);
  for (auto* v : {&dk_, &dv_, &dks_, &dk0_, &dv0_}) v->resize(N * Ckv);
  for (auto* v : {&dlam_, &dhg_, &dpre_}) v->resize(N * H);
  for (auto* v : {&dg_, &da1_, &da3_}) v->resize(N * FH);
  if (cfg.any_nsa())
    for (auto* v : {&nsa_pre_, &dgates_}) v->resize(3 * N * H);
}

template <class F>
typename CpuModel<F>::LayerParams CpuModel<F>::layer_params(F* base, int l) const {
  return cpu_layer_params(cfg_, layout_, base, l);
}

template <class F>
void CpuModel<F>::init_params(uint64_t seed) {
  std::vector<float> p(layout_.total());
  init_parameters(cfg_, layout_, seed, p.data());
  std::copy(p.begin(), p.end(), params_.begin());
  zero_grad();
}

template <class F>
void CpuModel<F>::zero_grad() {
  zero(grads_);
}

template <class F>
void CpuModel<F>::check_tokens(const int32_t* tokens, int B, int T, const char* what, bool forward_only) const {
  const bool fits = forward_only ? long(B) * T <= long(max_B_) * max_T_ : B <= max_B_;
  if (B < 1 || !fits || T < 1 || T > max_T_)
    throw std::invalid_argument("CpuModel: batch " + std::to_string(B) + "x" + std::to_string(T) +
                                " outside the allocated 1.." + std::to_string(max_B_) + " x 1.." +
                                std::to_string(max_T_) + (forward_only ? " (forward only: B*T tokens at most)" : ""));
  for (long n = 0; n < long(B) * T; ++n)
    if (tokens[n] < 0 || tokens[n] >= cfg_.vocab_size)
      throw std::invalid_argument(std::string("CpuModel: ") + what + " token id " + std::to_string(tokens[n]) +
                                  " at position " + std::to_string(n) + " outside [0, " +
                                  std::to_string(cfg_.vocab_size) + ")");
}

template <class F>
cpu::NsaInputs<F> CpuModel<F>::nsa_inputs(const LayerActs& a, const F* v, int N) const {
  const size_t NH = size_t(N) * cfg_.n_heads;
  return {a.q.data(), a.k.data(), v, a.lam.empty() ? nullptr : a.lam.data(),
          a.gates.data(), a.gates.data() + NH, a.gates.data() + 2 * NH};
}

template <class F>
void CpuModel<F>::forward_layer(int l, int B, int T) {
  const int N = B * T, C = cfg_.d_model, H = cfg_.n_heads, D = cfg_.head_dim(), FH = cfg_.hidden();
  const int Ckv = cfg_.kv_dim(), Hkv = cfg_.kv_heads();
  const double eps = cfg_.norm_eps, theta = cfg_.attention.rope_theta;
  const LayerAttention attn = cfg_.layer_attention(l);
  const AttnMode mode = attn.mode;
  const bool shift = cfg_.attention.token_shift, gated = cfg_.layer_gated(l);
  const LayerParams P = layer_params(params_.data(), l);
  LayerActs& a = acts_[l];
  const F* x = resid_[l].data();

  cpu::rmsnorm_forward(a.h.data(), a.rstd1.data(), x, P.attn_norm, N, C, eps);
  cpu::matmul_forward(a.qp.data(), a.h.data(), P.wq, (const F*)nullptr, N, C, C);
  cpu::matmul_forward(a.k0.data(), a.h.data(), P.wk, (const F*)nullptr, N, C, Ckv);
  cpu::matmul_forward(a.v0.data(), a.h.data(), P.wv, (const F*)nullptr, N, C, Ckv);
  if (shift) {
    cpu::token_shift_forward(a.ks.data(), a.ak.data(), a.k0.data(), a.h.data(), P.shift_k, B, T, Hkv, D, C);
    cpu::token_shift_forward(a.vs.data(), a.av.data(), a.v0.data(), a.h.data(), P.shift_v, B, T, Hkv, D, C);
  }
  const F* kin = shift ? a.ks.data() : a.k0.data();
  const F* vin = shift ? a.vs.data() : a.v0.data();
  cpu::rmsnorm_forward(a.q.data(), a.rstd_q.data(), a.qp.data(), P.q_norm, N, C, eps);
  cpu::rmsnorm_forward(a.k.data(), a.rstd_k.data(), kin, P.k_norm, N, Ckv, eps);
  cpu::rope_forward(a.q.data(), a.q.data(), B, T, H, D, theta);
  cpu::rope_forward(a.k.data(), a.k.data(), B, T, Hkv, D, theta);
  if (gated) {
    cpu::matmul_forward(a.hg.data(), a.h.data(), P.gate_w, P.gate_b, N, C, H);
    cpu::matmul_forward(a.pre.data(), a.h.data(), P.gate_sharp, (const F*)nullptr, N, C, H);
    cpu::gate_forward(B, T, H, a.hg.data(), a.pre.data(), a.logf.data(), a.lam.data());
  }
  if (mode == AttnMode::nsa) {
    cpu::matmul_forward(nsa_pre_.data(), a.h.data(), P.nsa_gate, (const F*)nullptr, N, C, 3 * H);
    cpu::nsa_gates_forward(nsa_pre_.data(), N, H, a.gates.data());
    cpu::nsa_forward(cfg_.nsa_shape(l, B, T), cfg_.attention.nsa.sliding, nsa_inputs(a, vin, N), a.o.data(), &a.nsa);
  } else {
    const cpu::AttnShape shape{B, T, H, D, attn.window, Hkv};
    cpu::attention_forward(shape, mode, a.q.data(), a.k.data(), vin, gated ? a.lam.data() : (const F*)nullptr,
                           a.o.data(), a.lse.data());
  }
  cpu::matmul_forward(tmp_.data(), a.o.data(), P.wo, (const F*)nullptr, N, C, C);
  std::copy_n(x, size_t(N) * C, a.x_mid.data());
  add_into(a.x_mid.data(), tmp_.data(), size_t(N) * C);

  cpu::rmsnorm_forward(a.h2.data(), a.rstd2.data(), a.x_mid.data(), P.mlp_norm, N, C, eps);
  cpu::matmul_forward(a.a1.data(), a.h2.data(), P.w1, (const F*)nullptr, N, C, FH);
  cpu::matmul_forward(a.a3.data(), a.h2.data(), P.w3, (const F*)nullptr, N, C, FH);
  cpu::swiglu_forward(a.g.data(), a.a1.data(), a.a3.data(), size_t(N) * FH);
  cpu::matmul_forward(tmp_.data(), a.g.data(), P.w2, (const F*)nullptr, N, FH, C);
  F* out = resid_[l + 1].data();
  std::copy_n(a.x_mid.data(), size_t(N) * C, out);
  add_into(out, tmp_.data(), size_t(N) * C);
}

template <class F>
void CpuModel<F>::forward_hidden(const int32_t* inputs, int B, int T) {
  cpu::embedding_forward(resid_[0].data(), inputs, param("embed"), B * T, cfg_.d_model);
  for (int l = 0; l < cfg_.n_layers; ++l) forward_layer(l, B, T);
}

template <class F>
void CpuModel<F>::classifier(int N) {
  const int C = cfg_.d_model;
  const F* x = resid_[cfg_.n_layers].data();
  cpu::rmsnorm_forward(lnf_.data(), rstdf_.data(), x, param("final_norm"), N, C, double(cfg_.norm_eps));
  cpu::matmul_forward(logits_.data(), lnf_.data(), param("embed"), (const F*)nullptr, N, C, cfg_.vocab_size);
}

template <class F>
double CpuModel<F>::forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) {
  check_tokens(inputs, B, T, "input");
  check_tokens(targets, B, T, "target");
  forward_hidden(inputs, B, T);
  classifier(B * T);
  return cpu::cross_entropy_forward(logits_.data(), targets, B * T, cfg_.vocab_size);
}

template <class F>
void CpuModel<F>::backward_layer(int l, int B, int T) {
  const int N = B * T, C = cfg_.d_model, H = cfg_.n_heads, D = cfg_.head_dim(), FH = cfg_.hidden();
  const int Ckv = cfg_.kv_dim(), Hkv = cfg_.kv_heads();
  const double theta = cfg_.attention.rope_theta;
  const LayerAttention attn = cfg_.layer_attention(l);
  const AttnMode mode = attn.mode;
  const bool shift = cfg_.attention.token_shift, gated = cfg_.layer_gated(l);
  const LayerParams P = layer_params(params_.data(), l);
  const LayerParams G = layer_params(grads_.data(), l);
  LayerActs& a = acts_[l];
  // dx_ holds dL/d(output of layer l) on entry and dL/d(input of layer l) on exit.

  // MLP: out = x_mid + W2 (SiLU(a1) * a3)
  zero(dg_);
  cpu::matmul_backward(dg_.data(), G.w2, (F*)nullptr, dx_.data(), a.g.data(), P.w2, N, FH, C);
  zero(da1_);
  zero(da3_);
  cpu::swiglu_backward(da1_.data(), da3_.data(), dg_.data(), a.a1.data(), a.a3.data(), size_t(N) * FH);
  zero(dh_);
  cpu::matmul_backward(dh_.data(), G.w1, (F*)nullptr, da1_.data(), a.h2.data(), P.w1, N, C, FH);
  cpu::matmul_backward(dh_.data(), G.w3, (F*)nullptr, da3_.data(), a.h2.data(), P.w3, N, C, FH);
  cpu::rmsnorm_backward(dx_.data(), G.mlp_norm, dh_.data(), a.x_mid.data(), P.mlp_norm, a.rstd2.data(), N, C);

  // Attention: x_mid = x + Wo Attn(q, k, v, lam)
  zero(dout_);
  cpu::matmul_backward(dout_.data(), G.wo, (F*)nullptr, dx_.data(), a.o.data(), P.wo, N, C, C);
  const F* vin = shift ? a.vs.data() : a.v0.data();
  const F* kin = shift ? a.ks.data() : a.k0.data();
  zero(dh_);
  if (mode == AttnMode::nsa) {
    const size_t NH = size_t(N) * H;
    const cpu::NsaGrads<F> g{dq_.data(), dk_.data(), dv_.data(), gated ? dlam_.data() : (F*)nullptr,
                             dgates_.data(), dgates_.data() + NH, dgates_.data() + 2 * NH};
    cpu::nsa_backward(cfg_.nsa_shape(l, B, T), cfg_.attention.nsa.sliding, nsa_inputs(a, vin, N), a.nsa,
                      dout_.data(), g);
    cpu::nsa_gates_backward(a.gates.data(), dgates_.data(), N, H, nsa_pre_.data());
    cpu::matmul_backward(dh_.data(), G.nsa_gate, (F*)nullptr, nsa_pre_.data(), a.h.data(), P.nsa_gate, N, C, 3 * H);
  } else {
    const cpu::AttnShape shape{B, T, H, D, attn.window, Hkv};
    cpu::attention_backward(shape, mode, a.q.data(), a.k.data(), vin, gated ? a.lam.data() : (const F*)nullptr,
                            a.o.data(), a.lse.data(), dout_.data(), dq_.data(), dk_.data(), dv_.data(),
                            gated ? dlam_.data() : (F*)nullptr);
  }
  if (gated) {
    cpu::gate_backward(B, T, H, a.hg.data(), a.pre.data(), dlam_.data(), dhg_.data(), dpre_.data());
    cpu::matmul_backward(dh_.data(), G.gate_w, G.gate_b, dhg_.data(), a.h.data(), P.gate_w, N, C, H);
    cpu::matmul_backward(dh_.data(), G.gate_sharp, (F*)nullptr, dpre_.data(), a.h.data(), P.gate_sharp, N, C, H);
  }
  cpu::rope_backward(dq_.data(), dq_.data(), B, T, H, D, theta);
  cpu::rope_backward(dk_.data(), dk_.data(), B, T, Hkv, D, theta);
  zero(dqp_);
  cpu::rmsnorm_backward(dqp_.data(), G.q_norm, dq_.data(), a.qp.data(), P.q_norm, a.rstd_q.data(), N, C);
  zero(dks_);
  cpu::rmsnorm_backward(dks_.data(), G.k_norm, dk_.data(), kin, P.k_norm, a.rstd_k.data(), N, Ckv);
  const F* dk0 = dks_.data();
  const F* dv0 = dv_.data();
  if (shift) {
    zero(dk0_);
    cpu::token_shift_backward(dk0_.data(), dh_.data(), G.shift_k, dks_.data(), a.ak.data(), a.k0.data(), a.h.data(),
                              P.shift_k, B, T, Hkv, D, C);
    zero(dv0_);
    cpu::token_shift_backward(dv0_.data(), dh_.data(), G.shift_v, dv_.data(), a.av.data(), a.v0.data(), a.h.data(),
                              P.shift_v, B, T, Hkv, D, C);
    dk0 = dk0_.data();
    dv0 = dv0_.data();
  }
  cpu::matmul_backward(dh_.data(), G.wq, (F*)nullptr, dqp_.data(), a.h.data(), P.wq, N, C, C);
  cpu::matmul_backward(dh_.data(), G.wk, (F*)nullptr, dk0, a.h.data(), P.wk, N, C, Ckv);
  cpu::matmul_backward(dh_.data(), G.wv, (F*)nullptr, dv0, a.h.data(), P.wv, N, C, Ckv);
  cpu::rmsnorm_backward(dx_.data(), G.attn_norm, dh_.data(), resid_[l].data(), P.attn_norm, a.rstd1.data(), N, C);
}

template <class F>
double CpuModel<F>::forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T, double dloss) {
  check_tokens(inputs, B, T, "input");
  check_tokens(targets, B, T, "target");
  forward_hidden(inputs, B, T);
  const int N = B * T, C = cfg_.d_model, V = cfg_.vocab_size;
  classifier(N);
  // The fused pass computes the loss and turns the logits into their gradient.
  const double loss = cpu::cross_entropy_forward_backward(logits_.data(), targets, N, V, dloss);
  zero(dh_);
  cpu::matmul_backward(dh_.data(), grad("embed"), (F*)nullptr, logits_.data(), lnf_.data(), param("embed"), N, C, V);
  zero(dx_);
  cpu::rmsnorm_backward(dx_.data(), grad("final_norm"), dh_.data(), resid_[cfg_.n_layers].data(), param("final_norm"),
                        rstdf_.data(), N, C);
  for (int l = cfg_.n_layers - 1; l >= 0; --l) backward_layer(l, B, T);
  cpu::embedding_backward(grad("embed"), inputs, dx_.data(), N, C);
  return loss;
}

template <class F>
void CpuModel<F>::last_logits(const int32_t* tokens, int T, std::vector<F>& out) {
  check_tokens(tokens, 1, T, "input");
  forward_hidden(tokens, 1, T);
  const int C = cfg_.d_model, V = cfg_.vocab_size;
  const F* x = resid_[cfg_.n_layers].data() + size_t(T - 1) * C;
  cpu::rmsnorm_forward(lnf_.data(), rstdf_.data(), x, param("final_norm"), 1, C, double(cfg_.norm_eps));
  out.resize(V);
  cpu::matmul_forward(out.data(), lnf_.data(), param("embed"), (const F*)nullptr, 1, C, V);
}

template <class F>
void CpuModel<F>::target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out) {
  check_tokens(inputs, B, T, "input", true);
  check_tokens(targets, B, T, "target", true);
  forward_hidden(inputs, B, T);
  classifier(B * T);
  std::vector<double> nll(size_t(B) * T);
  cpu::cross_entropy_rows(logits_.data(), targets, B * T, cfg_.vocab_size, nll.data());
  for (size_t n = 0; n < nll.size(); ++n) out[n] = float(-nll[n]);
}

template class CpuModel<float>;
template class CpuModel<double>;

}  // namespace gfwa
