// The fp32 cpu backend: CpuModel<float> plus optimizer state, behind the trainer's Backend interface.
#pragma once
#include <memory>

#include "model/backend.h"
#include "model/cpu_model.h"

namespace gfwa {

class CpuBackend : public Backend {
 public:
  CpuBackend(const ModelConfig& cfg, int max_B, int max_T);

  std::string name() const override { return "cpu"; }
  double peak_flops() const override { return 0.0; }  // depends on the host: no MFU
  int64_t memory_in_use() const override;             // resident set size
  const ModelConfig& config() const override { return model_.config(); }
  const ParamLayout& layout() const override { return model_.layout(); }

  void init_params(uint64_t seed) override;  // also zeroes gradients and AdamW moments
  void queue_forward_backward(const int32_t* inputs, const int32_t* targets, int B, int T, float grad_scale) override;
  double take_losses() override;
  float forward_loss(const int32_t* inputs, const int32_t* targets, int B, int T) override;
  void last_logits(const int32_t* tokens, int T, std::vector<float>& logits) override;
  void target_logprobs(const int32_t* inputs, const int32_t* targets, int B, int T, float* out,
                       int32_t* argmax) override;
  void gate_log_f(std::vector<std::vector<float>>& out) override;

  std::unique_ptr<Decoder> make_decoder(int batch, int64_t max_length) override;

  void zero_grad() override { model_.zero_grad(); }
  double grad_norm() override;
  void adamw_update(const AdamWStep& step) override;
  void muon_update(const MuonStep& muon, const AdamWStep& adamw) override;  // gradients stay intact

  void get_params(std::vector<float>& out) override { out = model_.params(); }
  void set_params(const std::vector<float>& in) override;
  void get_grads(std::vector<float>& out) override { out = model_.grads(); }
  void get_adam_state(std::vector<float>& m, std::vector<float>& v) override;
  void set_adam_state(const std::vector<float>& m, const std::vector<float>& v) override;

 private:
  void check_size(const std::vector<float>& x, const char* what) const;
  CpuModel<float> model_;
  std::vector<float> m_, v_;
  double losses_ = 0;  // queue_forward_backward's losses since take_losses
  std::vector<float> muon_u_, muon_o_;  // Muon's update of one matrix before and after Newton-Schulz
};

// Throws std::runtime_error naming the sizes and the keys that set them when a CpuBackend for
// micro-batches of max_B x max_T would need more than available_bytes (checked before allocating:
// the constructor checks against host_memory_available_bytes()).
void check_cpu_memory_plan(const ModelConfig& cfg, int max_B, int max_T, double available_bytes);

// Throws std::invalid_argument when max_B or max_T < 1.
std::unique_ptr<Backend> make_cpu_backend(const ModelConfig& cfg, int max_B, int max_T);

}  // namespace gfwa
