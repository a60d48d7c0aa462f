// What the trainer needs from a model backend (cpu: fp32 reference; cuda: bf16 + fp32 master).
// Parameters, gradients and optimizer state follow ParamLayout; host copies are fp32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/adamw_step.h"
#include "kernels/muon_step.h"
#include "model/decoder.h"
#include "model/model_config.h"
#include "model/param_layout.h"

namespace gfwa {

namespace dist {
class Collectives;
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual const ModelConfig& config() const = 0;
  virtual const ParamLayout& layout() const = 0;

  // Documented initialisation (docs/config.md), deterministic in the seed.
  virtual void init_params(uint64_t seed) = 0;

  // One micro-batch: inputs/targets are [B, T] token ids. Gradients accumulate (+=) scaled by
  // grad_scale (1 / micro-batches per step). Its mean cross-entropy over the B*T targets is kept,
  // without waiting for the device, until take_losses: the host prepares the next micro-batch
  // while this one runs.
  virtual void queue_forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T,
                                      float grad_scale) = 0;
  // The mean losses of the micro-batches queued since the last call, summed in order in double
  // (waits for the device).
  virtual double take_losses() = 0;
  // One micro-batch, waited for: its mean cross-entropy.
  float forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T, float grad_scale) {
    queue_forward_backward(inputs, targets, B, T, grad_scale);
    return float(take_losses());
  }
  // Loss only (evaluation): mean cross-entropy over B*T targets.
  virtual float forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) = 0;
  // Logits [vocab] of the last position of a single sequence of length T (sampling).
  virtual void last_logits(const int32_t* tokens, int T, std::vector<float>& logits) = 0;
  // Per-token scoring (zero-shot tasks in src/eval, per-position evaluation):
  // out[b*T + t] = log p(targets[b, t] | inputs[b, 0..t]) for [B, T] inputs/targets, and, when argmax
  // is not null, argmax[b*T + t] = the most likely id there (the lowest one among equal maxima).
  // Forward only, so the shape may be any B x T with T <= max_T and B * T <= max_B * max_T (many
  // short rows fit where training takes few long ones).
  virtual void target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out,
                               int32_t* argmax) = 0;
  // gatedfwa: log f (gatedfwa.md section 2) of the latest forward pass, per layer [B, T, H] flattened
  // (out[layer][(b * T + t) * H + h]); empty for a layer without gates (model.attention.pattern).
  // Throws std::logic_error for a model without gates.
  virtual void gate_log_f(std::vector<std::vector<float>>& out) = 0;

  // Incremental decoding of `batch` sequences (model/decoder.h) with the current parameters.
  // max_length bounds a sequence for full attention (its cache holds every token); windowed
  // attention ignores it. The decoder must not outlive the backend.
  virtual std::unique_ptr<Decoder> make_decoder(int batch, int64_t max_length) = 0;

  virtual void zero_grad() = 0;
  virtual double grad_norm() = 0;   // global L2 norm of the accumulated gradients
  virtual void adamw_update(const AdamWStep& step) = 0;
  // optimizer.type muon: Muon (muon_step.h) on the hidden matrices (ParamTensor::hidden), AdamW
  // on every other tensor. Muon's momentum lives in the AdamW first-moment buffer m of its
  // tensors (their v stays 0), so the optimizer state keeps one format. Afterwards get_grads may
  // not return the gradients of the hidden matrices (the cuda backend overwrites them).
  virtual void muon_update(const MuonStep& muon, const AdamWStep& adamw) = 0;

  // fp32 host copies, for checkpoints and tests.
  virtual void get_params(std::vector<float>& out) = 0;
  virtual void set_params(const std::vector<float>& in) = 0;
  virtual void get_grads(std::vector<float>& out) = 0;
  // The optimizer state m, v (AdamW moments; with Muon, m holds its momentum, see muon_update).
  virtual void get_adam_state(std::vector<float>& m, std::vector<float>& v) = 0;
  virtual void set_adam_state(const std::vector<float>& m, const std::vector<float>& v) = 0;

  // Dense peak FLOP/s of one device, for MFU; 0 when unknown (the cpu backend: it depends on the host).
  virtual double peak_flops() const = 0;
  // Bytes in use: device memory for a GPU backend, the process's resident set size otherwise.
  virtual int64_t memory_in_use() const = 0;

  // Data parallelism (docs/distributed.md). After set_communicator, the backward pass that follows
  // reduce_grads_in_next_backward() averages the gradients across the communicator's ranks (in
  // buckets of up to bucket_bytes), and grad_norm / adamw_update see the averaged gradients. The
  // communicator must outlive the backend. Backends without it refuse; the cpu backend is one.
  virtual void set_communicator(dist::Collectives* comm, size_t bucket_bytes) {
    (void)comm;
    (void)bucket_bytes;
    throw std::runtime_error("the " + name() + " backend does not support data-parallel training");
  }
  virtual void reduce_grads_in_next_backward() {}
};

}  // namespace gfwa
