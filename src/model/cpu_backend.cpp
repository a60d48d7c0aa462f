#include "model/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include "kernels/adamw_cpu.h"
#include "kernels/argmax_cpu.h"
#include "kernels/muon_cpu.h"
#include "model/cpu_decoder.h"
#include "model/host_memory.h"

namespace gfwa {

namespace {

// 1.50 GiB, 3.20 TiB, 41.00 PiB ...
std::string gib(double bytes) {
  const char* units[] = {"GiB", "TiB", "PiB", "EiB"};
  double v = bytes / double(1ull << 30);
  size_t u = 0;
  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) v /= 1024, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace

CpuBackend::CpuBackend(const ModelConfig& cfg, int max_B, int max_T)
    : model_((check_cpu_memory_plan(cfg, max_B, max_T, host_memory_available_bytes()), cfg), max_B, max_T),
      m_(model_.layout().total(), 0.0f),
      v_(model_.layout().total(), 0.0f) {}

void check_cpu_memory_plan(const ModelConfig& cfg, int max_B, int max_T, double available_bytes) {
  const CpuModelBytes b = CpuModel<float>::planned_bytes(cfg, max_B, max_T);
  const double adamw = b.params;  // m and v: as many floats as parameters and gradients together
  const double total = b.total() + adamw;
  if (total <= available_bytes) return;
  const std::string B = std::to_string(max_B), T = std::to_string(max_T);
  throw std::runtime_error(
      "cpu backend: the memory plan needs " + gib(total) + ", more than the " + gib(available_bytes) +
      " of host memory available: parameters, gradients and AdamW moments " + gib(b.params + adamw) +
      " (model.vocab_size " + std::to_string(cfg.vocab_size) + ", model.d_model " + std::to_string(cfg.d_model) +
      ", model.n_layers " + std::to_string(cfg.n_layers) + ", MLP width " + std::to_string(cfg.hidden()) +
      "); activations and scratch " + gib(b.activations + b.scratch) + " for micro-batches of train.batch_size " + B +
      " x train.seq_len " + T + " tokens; logits " + gib(b.logits) + " (train.batch_size " + B + " x train.seq_len " +
      T + " x model.vocab_size " + std::to_string(cfg.vocab_size) + "). Lower the keys of the largest part");
}

int64_t CpuBackend::memory_in_use() const {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmRSS:  1234 kB"
  return 0;
}

void CpuBackend::init_params(uint64_t seed) {
  model_.init_params(seed);
  std::fill(m_.begin(), m_.end(), 0.0f);
  std::fill(v_.begin(), v_.end(), 0.0f);
}

void CpuBackend::queue_forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T,
                                        float grad_scale) {
  losses_ += double(float(model_.forward_backward(inputs, targets, B, T, grad_scale)));
}

double CpuBackend::take_losses() {
  const double sum = losses_;
  losses_ = 0;
  return sum;
}

float CpuBackend::forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) {
  return float(model_.forward_loss(inputs, targets, B, T));
}

void CpuBackend::last_logits(const int32_t* tokens, int T, std::vector<float>& logits) {
  model_.last_logits(tokens, T, logits);
}

void CpuBackend::target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out,
                                 int32_t* argmax) {
  model_.target_logprobs(inputs, targets, B, T, out);
  if (argmax) cpu::argmax_rows(model_.logits(), B * T, config().vocab_size, argmax);
}

void CpuBackend::gate_log_f(std::vector<std::vector<float>>& out) {
  if (!config().any_gated())
    throw std::logic_error("gate_log_f: the model has no gates (no layer is gatedfwa or nsa with a gatedfwa "
                               "sliding branch)");
  out.resize(size_t(config().n_layers));
  for (int l = 0; l < config().n_layers; ++l) out[size_t(l)] = model_.gate_logf(l);
}

double CpuBackend::grad_norm() {
  const std::vector<float>& g = model_.grads();
  return std::sqrt(cpu::sum_squares(g.data(), g.size()));
}

void CpuBackend::adamw_update(const AdamWStep& s) {
  if (s.t < 1) throw std::invalid_argument("adamw_update: step t must be >= 1 (got " + std::to_string(s.t) + ")");
  float* p = model_.params().data();
  const float* g = model_.grads().data();
  for (const ParamTensor& t : layout().tensors())
    cpu::adamw_update(p + t.offset, g + t.offset, m_.data() + t.offset, v_.data() + t.offset, t.numel, s, t.decay);
}

void CpuBackend::muon_update(const MuonStep& mu, const AdamWStep& s) {
  if (s.t < 1) throw std::invalid_argument("muon_update: step t must be >= 1 (got " + std::to_string(s.t) + ")");
  float* p = model_.params().data();
  const float* g = model_.grads().data();
  for (const ParamTensor& t : layout().tensors()) {
    if (!t.hidden) {
      cpu::adamw_update(p + t.offset, g + t.offset, m_.data() + t.offset, v_.data() + t.offset, t.numel, s, t.decay);
      continue;
    }
    const int rows = t.shape[0], cols = t.shape[1];
    muon_u_.resize(t.numel);
    muon_o_.resize(t.numel);
    cpu::muon_momentum(g + t.offset, m_.data() + t.offset, muon_u_.data(), t.numel, mu);
    cpu::newton_schulz(muon_u_.data(), muon_o_.data(), rows, cols, mu.ns_steps);
    cpu::muon_apply(p + t.offset, muon_o_.data(), t.numel, mu, rows, cols);
  }
}

void CpuBackend::check_size(const std::vector<float>& x, const char* what) const {
  if (x.size() != layout().total())
    throw std::invalid_argument(std::string("cpu backend: ") + what + " has " + std::to_string(x.size()) +
                                " values, the model has " + std::to_string(layout().total()));
}

std::unique_ptr<Decoder> CpuBackend::make_decoder(int batch, int64_t max_length) {
  return std::make_unique<CpuDecoder>(model_.config(), model_.layout(), model_.params(), batch, max_length);
}

void CpuBackend::set_params(const std::vector<float>& in) {
  check_size(in, "set_params input");
  model_.params() = in;
}

void CpuBackend::get_adam_state(std::vector<float>& m, std::vector<float>& v) {
  m = m_;
  v = v_;
}

void CpuBackend::set_adam_state(const std::vector<float>& m, const std::vector<float>& v) {
  check_size(m, "AdamW m");
  check_size(v, "AdamW v");
  m_ = m;
  v_ = v;
}

std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& cfg, int max_B, int max_T) {
  return std::make_unique<CpuBackend>(cfg, max_B, max_T);
}

}  // namespace gfwa
