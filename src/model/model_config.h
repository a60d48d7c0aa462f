// Shape and options of the decoder (docs/gatedfwa.md section 3). Parsed and validated in train/config.cpp.
#pragma once
#include <string>

#include "kernels/attention_mode.h"

namespace gfwa {

struct AttentionConfig {
  AttnMode mode = AttnMode::gatedfwa;
  int window = 512;              // W: keys per query, self included (ignored by full)
  float gate_bias_init = 0.0f;   // initial bg; 2.0 keeps gates open at start
  bool token_shift = false;      // data-dependent K/V token shift
  float rope_theta = 10000.0f;
};

struct ModelConfig {
  int vocab_size = 50304;
  int n_layers = 12;
  int d_model = 768;
  int n_heads = 12;
  int n_kv_heads = 0;            // key/value heads; 0 => n_heads. Divides n_heads (1: multi-query)
  int ffn_hidden = 0;            // 0 => 4 * d_model
  float norm_eps = 1e-6f;        // every RMSNorm, QK-norm included
  float init_std = 0.02f;
  std::string init_from;         // exported weights (.safetensors) a fresh run starts from; "" => init_std
  AttentionConfig attention;

  int head_dim() const { return d_model / n_heads; }
  // Grouped-query attention: query head h reads key/value head h / (n_heads / kv_heads()).
  int kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  int kv_dim() const { return kv_heads() * head_dim(); }  // width of the K and V projections
  int hidden() const { return ffn_hidden > 0 ? ffn_hidden : 4 * d_model; }
};

}  // namespace gfwa
