// Incremental decoding (docs/generate.md): a batch of sequences ("slots"), each with its own cache
// of the last W keys, values and gate state per layer and head (kernels/decode_cpu.h), so a new
// token costs O(W) whatever the length generated; full attention keeps every token (O(T)).
// Made by Backend::make_decoder; reads the backend's parameters at each call, so it must not
// outlive the backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace gfwa {

// "" when the model can be decoded, else why not in one line: an nsa layer (model.attention.mode or
// pattern) has no decode path (it would need a cache of block means and a selection per step).
std::string decoder_support_problem(const ModelConfig& cfg);
// Tokens a decoder's slot may hold: max_length when some layer is full attention (its cache holds
// every token), else unbounded. Throws std::invalid_argument when a full layer needs max_length
// and it is outside [1, 2^31), or for a model decoder_support_problem refuses (every decoder calls it
// first).
int64_t decoder_max_length(const ModelConfig& cfg, int64_t max_length);
// Cache entries per slot and head of each layer: max_length for a full layer, W for a windowed
// one, capped at max_length when a full layer bounds the length (model.attention.pattern).
std::vector<int> decoder_cache_caps(const ModelConfig& cfg, int64_t max_length);

class Decoder {
 public:
  virtual ~Decoder() = default;

  int batch() const { return batch_; }
  int vocab() const { return vocab_; }
  // Tokens a slot may hold (decoder_max_length): bounded only when some layer is full attention.
  int64_t max_length() const { return max_length_; }

  // Starts slot b afresh with tokens[0..n), n >= 1, and computes the logits after its last token.
  virtual void prefill(int b, const int32_t* tokens, int n) = 0;
  // Appends tokens[b] to every slot b < batch() and computes each slot's next logits.
  virtual void step(const int32_t* tokens) = 0;
  // Logits [batch, vocab] (fp32, host) after the latest prefill or step of each slot.
  virtual const std::vector<float>& logits() = 0;
  // The most likely id below `limit` of every slot (lowest id on ties): sample_token at
  // temperature 0 without copying the logits (the cuda decoder takes the argmax on the device).
  virtual void greedy(int limit, int32_t* ids);
  // Tokens slot b holds (its next position).
  int64_t position(int b) const { return pos_.at(size_t(b)); }
  // Bytes held by the caches (keys, values, gate and token-shift state) of all slots.
  virtual int64_t cache_bytes() const = 0;

 protected:
  Decoder(int batch, int64_t max_length, int vocab)
      : batch_(batch), vocab_(vocab), max_length_(max_length), pos_(size_t(batch), 0) {}
  // Throws std::invalid_argument naming the slot, the token and the limit for a bad request.
  void check_prefill(int b, const int32_t* tokens, int n) const;
  void check_step(const int32_t* tokens) const;

  int batch_, vocab_;
  int64_t max_length_;
  std::vector<int64_t> pos_;
};

}  // namespace gfwa
