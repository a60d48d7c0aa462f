// The cpu backend's decoder (model/decoder.h): the forward of CpuModel<float> one token per row,
// with attention through the cache of kernels/decode_cpu.h. A prompt goes through the same path
// in chunks (projections and MLP batched over the chunk's rows, attention token by token), so
// prefill and decode compute the same keys, values and gates as the training forward.
#pragma once
#include <cstdint>
#include <vector>

#include "model/decoder.h"
#include "model/model_config.h"
#include "model/param_layout.h"

namespace gfwa {

class CpuDecoder final : public Decoder {
 public:
  // params: the backend's flat fp32 buffer, read at every call.
  CpuDecoder(const ModelConfig& cfg, const ParamLayout& layout, const std::vector<float>& params, int batch,
             int64_t max_length);

  void prefill(int b, const int32_t* tokens, int n) override;
  void step(const int32_t* tokens) override;
  const std::vector<float>& logits() override { return logits_; }
  int64_t cache_bytes() const override;

 private:
  struct LayerCache {
    std::vector<float> k, v, lam, shift_k, shift_v;
    std::vector<double> lam_now;
  };
  // Rows n < N: token tokens[n] of slot slots[n] at position pos[n] (a slot's rows in order).
  // Writes the logits of the rows with keep[n] to row slots[n] of logits_.
  void forward_rows(const int32_t* tokens, const int* slots, const long long* pos, const uint8_t* keep, int N);
  void resize_rows(int N);

  ModelConfig cfg_;
  const ParamLayout& layout_;
  const std::vector<float>& params_;
  std::vector<int> caps_;  // cache entries per slot and head, per layer (decoder_cache_caps)
  std::vector<LayerCache> cache_;
  std::vector<float> logits_;
  // row buffers [N, ...]
  std::vector<float> x_, h_, q_, k_, v_, qr_, o_, tmp_, pre_k_, pre_v_, hg_, pre_, a1_, a3_, g_, row_logits_;
  std::vector<float> rstd_;
};

}  // namespace gfwa
