// Shape and options of the decoder (docs/gatedfwa.md section 3). Parsed and validated in train/config.cpp.
#pragma once
#include <string>
#include <vector>

#include "kernels/attention_mode.h"
#include "kernels/nsa_shape.h"

namespace gfwa {

// One layer's attention: its mode and W (keys per query, self included; ignored by full).
struct LayerAttention {
  AttnMode mode = AttnMode::gatedfwa;
  int window = 0;  // in a pattern list, 0 => model.attention.window
  bool operator==(const LayerAttention& o) const { return mode == o.mode && window == o.window; }
};

// model.attention.pattern (docs/config.md): each layer's own mode and window. Empty: every layer
// takes model.attention.mode and .window. `letters` tiles over the layers (its length divides
// n_layers): S = model.attention.mode with model.attention.window, L = full attention. `layers`
// lists one entry per layer. At most one of the two is set.
struct AttentionPattern {
  std::string letters;
  std::vector<LayerAttention> layers;
  bool empty() const { return letters.empty() && layers.empty(); }
  bool operator==(const AttentionPattern& o) const { return letters == o.letters && layers == o.layers; }
};

// model.attention.nsa (docs/nsa.md): Native Sparse Attention's settings, shared by its layers. The
// sliding branch's window is model.attention.window (or the layer's pattern entry).
struct NsaConfig {
  AttnMode sliding = AttnMode::gatedfwa;  // the sliding branch: swa or gatedfwa
  int block = 64;   // tokens per block: compression pool and unit of selection (the cuda backend: 64 only)
  int top_k = 16;   // blocks each query group selects, its own included (the cuda backend: at most 64)
  bool operator==(const NsaConfig& o) const { return sliding == o.sliding && block == o.block && top_k == o.top_k; }
};

struct AttentionConfig {
  AttnMode mode = AttnMode::gatedfwa;
  int window = 512;              // W: keys per query, self included (ignored by full)
  float gate_bias_init = 0.0f;   // initial bg; 2.0 keeps gates open at start
  bool token_shift = false;      // data-dependent K/V token shift
  float rope_theta = 10000.0f;
  AttentionPattern pattern;      // per-layer modes and windows; empty => mode and window everywhere
  NsaConfig nsa;                 // read by nsa layers only
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

  // Layer l's mode and window (window resolved, never 0), from the pattern when there is one
  // (model_config.cpp). Throws std::invalid_argument naming the problem of an invalid pattern
  // (attention_pattern_problem) or a layer outside [0, n_layers).
  LayerAttention layer_attention(int l) const;
  // Layer l has GatedFWA's log-gates (gate_w, gate_b, gate_sharp; lam): gatedfwa, or nsa whose sliding
  // branch is gatedfwa.
  bool layer_gated(int l) const;
  bool layer_nsa(int l) const { return layer_attention(l).mode == AttnMode::nsa; }
  bool any_gated() const;  // some layer has gates
  bool any_full() const;   // some layer attends to every earlier token (its decode cache is O(T))
  bool any_nsa() const;
  // "layer L has model.attention.mode nsa" for the first nsa layer L, "" without one: the subject of the
  // refusals of what does not take nsa layers (decoding, export).
  std::string first_nsa_layer_text() const;
  // The NSA core's shape of nsa layer l for a micro-batch of B x T.
  NsaShape nsa_shape(int l, int B, int T) const;
};

// "" when the pattern fits the model, else the problem in one line (letters other than S and L, a
// length that does not divide n_layers, a list of another length, a window < 1).
std::string attention_pattern_problem(const ModelConfig& cfg);

// "" when model.attention.nsa suits the model's nsa layers (or it has none), else the problem in one line
// naming the key and its value: a sliding branch other than swa or gatedfwa, block or top_k < 1.
std::string nsa_config_problem(const ModelConfig& cfg);

// Each layer's attention in one word for messages and logs: "gatedfwa:512" for a model without a
// pattern, else runs in layer order, "gatedfwa:512x3,full,gatedfwa:512x3,full" for "SSSL" over 8.
std::string attention_pattern_text(const ModelConfig& cfg);

}  // namespace gfwa
