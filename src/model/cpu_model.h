// The whole GatedFWA decoder (docs/gatedfwa.md section 3) on the CPU: parameters, gradients and the
// activations of one micro-batch, forward (loss) and exact backward for every parameter.
// Templated on the float type: CpuModel<float> is the cpu backend, CpuModel<double> the ground
// truth of the gradient checks.
//
// Per layer, with x the residual stream [B*T, d] and h = RMSNorm(x):
//   k0 = h Wk^T, v0 = h Wv^T (n_kv_heads heads each), then optional token shift of k0 and v0
//   (kernels/token_shift_cpu.h)
//   q = RoPE(QKNorm_q(h Wq^T)),  k = RoPE(QKNorm_k(k0)),  v = v0   (QK-norm over the whole width)
//   gatedfwa: lam = prefix sum of logf(hg = h Wg^T + bg, pre = h Wl^T)   (kernels/gate_cpu.h)
//   x += Attention(q, k, v, lam) Wo^T
//   (nsa layers: Attention is the NSA core, kernels/nsa_cpu.h, with gates g = sigmoid(h Wn^T)
//   (kernels/nsa_gates_cpu.h) and lam as above when its sliding branch is gatedfwa; the top-k selection
//   is a constant in the backward)
//   x += (SiLU(h2 W1^T) * (h2 W3^T)) W2^T,  h2 = RMSNorm(x)
// logits = RMSNorm(x) E^T (tied embedding), loss = mean cross-entropy.
// Threads: OpenMP; every reduction has a fixed order, so results do not depend on the team size.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/nsa_cpu.h"
#include "model/cpu_layer_params.h"
#include "model/model_config.h"
#include "model/param_layout.h"

namespace gfwa {

// Bytes a CpuModel allocates, by kind; doubles, so that absurd sizes neither wrap nor overflow.
struct CpuModelBytes {
  double params = 0;       // parameters and gradients
  double activations = 0;  // residual streams and what each layer's backward reads
  double logits = 0;       // [B*T, vocab]
  double scratch = 0;      // backward scratch
  double total() const { return params + activations + logits + scratch; }
};

template <class F>
class CpuModel {
 public:
  // What the constructor below allocates for these sizes (keep the two in step).
  static CpuModelBytes planned_bytes(const ModelConfig& cfg, int max_B, int max_T);

  // Buffers are sized for micro-batches up to max_B x max_T.
  CpuModel(const ModelConfig& cfg, int max_B, int max_T);

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  int max_B() const { return max_B_; }
  int max_T() const { return max_T_; }

  // Flat buffers in ParamLayout order.
  std::vector<F>& params() { return params_; }
  std::vector<F>& grads() { return grads_; }
  F* param(const std::string& name) { return params_.data() + layout_.get(name).offset; }
  F* grad(const std::string& name) { return grads_.data() + layout_.get(name).offset; }

  // param_init.h's documented initialisation (fp32 values, converted to F).
  void init_params(uint64_t seed);
  void zero_grad();

  // Mean cross-entropy of targets [B, T] given inputs [B, T]; logits() then holds [B*T, vocab].
  double forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T);
  const F* logits() const { return logits_.data(); }

  // Forward, then grads += dloss * d(mean loss)/d(params). Returns the loss. Leaves logits()
  // overwritten by their gradient.
  double forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T, double dloss);

  // Logits [vocab] of the last position of one sequence tokens[0..T).
  void last_logits(const int32_t* tokens, int T, std::vector<F>& out);

  // out[n] = log softmax(logits[n])[targets[n]] over the B*T rows (Backend::target_logprobs):
  // forward only, so B may exceed max_B as long as B * T <= max_B * max_T.
  void target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out);

  // Layer l's log f [B, T, H] from the latest forward pass (empty unless layer l has GatedFWA's gates).
  const std::vector<F>& gate_logf(int l) const { return acts_[size_t(l)].logf; }

 private:
  using LayerParams = CpuLayerParams<F>;
  struct LayerActs {  // what the backward of one layer reads
    std::vector<F> h, rstd1;             // attention-norm output and its 1/rms
    std::vector<F> qp, k0, v0;           // projections h Wq^T, h Wk^T, h Wv^T
    std::vector<F> ks, vs, ak, av;       // token-shifted k0, v0 and their gates (token_shift only)
    std::vector<F> q, k, rstd_q, rstd_k; // after QK-norm and RoPE; QK-norm 1/rms
    std::vector<F> hg, pre, logf, lam;   // gate path (layers with GatedFWA's gates only)
    std::vector<F> gates;                // nsa only: g_cmp | g_sel | g_win [3, N, H]
    cpu::NsaSaved<F> nsa;                // nsa only: what the NSA core's backward reads
    std::vector<F> o, lse, x_mid;        // attention output, its row log-sum-exp (not nsa), residual after attention
    std::vector<F> h2, rstd2, a1, a3, g; // MLP norm, W1 and W3 projections, SwiGLU output
  };

  LayerParams layer_params(F* base, int l) const;
  // forward_only: the activations are all that is needed, so B*T <= max_B*max_T is the bound on B.
  void check_tokens(const int32_t* tokens, int B, int T, const char* what, bool forward_only = false) const;
  void forward_hidden(const int32_t* inputs, int B, int T);  // fills resid_[0..L] and the layer acts
  void forward_layer(int l, int B, int T);
  // The NSA core's inputs of an nsa layer: q, k, v (token-shifted when it is on), lam, the gates.
  cpu::NsaInputs<F> nsa_inputs(const LayerActs& a, const F* v, int N) const;
  void backward_layer(int l, int B, int T);
  void classifier(int N);  // final norm and logits for the first N rows of resid_[L]

  ModelConfig cfg_;
  ParamLayout layout_;
  int max_B_, max_T_;
  std::vector<F> params_, grads_;
  std::vector<std::vector<F>> resid_;  // L + 1 residual streams [N, d]: the input of each layer, then the output
  std::vector<LayerActs> acts_;
  std::vector<F> lnf_, rstdf_, logits_, tmp_;
  // backward scratch
  std::vector<F> dx_, dh_, dout_, dq_, dk_, dv_, dqp_, dks_, dk0_, dv0_, dlam_, dhg_, dpre_, dg_, da1_, da3_;
  std::vector<F> nsa_pre_, dgates_;  // nsa: gate pre-activations [N, 3H] (their gradient in the backward), dg [3, N, H]
};

extern template class CpuModel<float>;
extern template class CpuModel<double>;

}  // namespace gfwa
