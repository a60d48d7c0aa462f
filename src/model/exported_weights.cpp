#include "model/exported_weights.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "model/safetensors.h"

namespace gfwa {
namespace {

// Per-layer tensors: our name after "layers.N." -> the exported name after "model.layers.N.".
const std::map<std::string, std::string>& layer_names() {
  static const std::map<std::string, std::string> m = {
      {"attn_norm", "input_layernorm.weight"},
      {"attn.wq", "self_attn.q_proj.weight"},
      {"attn.wk", "self_attn.k_proj.weight"},
      {"attn.wv", "self_attn.v_proj.weight"},
      {"attn.wo", "self_attn.o_proj.weight"},
      {"attn.q_norm", "self_attn.q_norm.weight"},
      {"attn.k_norm", "self_attn.k_norm.weight"},
      {"attn.shift_k", "self_attn.k_shift.weight"},
      {"attn.shift_v", "self_attn.v_shift.weight"},
      {"attn.gate_w", "self_attn.forget_gate.weight"},
      {"attn.gate_b", "self_attn.forget_gate.bias"},
      {"attn.gate_sharp", "self_attn.forget_sharpness.weight"},
      {"mlp_norm", "post_attention_layernorm.weight"},
      {"mlp.w1", "mlp.gate_proj.weight"},
      {"mlp.w3", "mlp.up_proj.weight"},
      {"mlp.w2", "mlp.down_proj.weight"},
  };
  return m;
}

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                          // round to nearest, ties to even
  return uint16_t(u >> 16);
}

float from_bf16(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::string shape_text(const std::vector<int64_t>& s) { return nlohmann::json(s).dump(); }

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw SafetensorsError(path + ": " + what); }

}  // namespace

WeightDtype parse_weight_dtype(const std::string& s) {
  if (s == "fp32" || s == "f32" || s == "float32") return WeightDtype::f32;
  if (s == "bf16" || s == "bfloat16") return WeightDtype::bf16;
  throw std::invalid_argument("dtype must be bf16 or fp32 (got \"" + s + "\")");
}

const char* weight_dtype_name(WeightDtype d) { return d == WeightDtype::bf16 ? "bf16" : "fp32"; }

std::string exported_name(const std::string& layout_name) {
  if (layout_name == "embed") return "model.embed_tokens.weight";
  if (layout_name == "final_norm") return "model.norm.weight";
  const std::string prefix = "layers.";
  const size_t dot = layout_name.find('.', prefix.size());
  if (layout_name.rfind(prefix, 0) == 0 && dot != std::string::npos) {
    const auto it = layer_names().find(layout_name.substr(dot + 1));
    if (it != layer_names().end()) return "model." + layout_name.substr(0, dot + 1) + it->second;
  }
  throw std::invalid_argument("no exported name for parameter tensor '" + layout_name + "'");
}

void write_exported_weights(const std::string& path, const ParamLayout& layout, const std::vector<float>& params,
                            WeightDtype dtype) {
  if (params.size() != layout.total())
    fail(path, std::to_string(params.size()) + " parameters given, the model has " + std::to_string(layout.total()));
  std::vector<uint16_t> half;
  if (dtype == WeightDtype::bf16) {
    half.resize(params.size());
    for (size_t i = 0; i < params.size(); ++i) half[i] = to_bf16(params[i]);
  }
  std::vector<SafetensorsTensor> tensors;
  for (const ParamTensor& p : layout.tensors()) {
    SafetensorsTensor t;
    t.name = exported_name(p.name);
    t.shape.assign(p.shape.begin(), p.shape.end());
    if (dtype == WeightDtype::bf16) {
      t.dtype = "BF16";
      t.data = half.data() + p.offset;
      t.bytes = p.numel * sizeof(uint16_t);
    } else {
      t.dtype = "F32";
      t.data = params.data() + p.offset;
      t.bytes = p.numel * sizeof(float);
    }
    tensors.push_back(std::move(t));
  }
  // "format": "pt" is what Hugging Face loaders expect of a PyTorch-layout file.
  write_safetensors(path, tensors, {{"format", "pt"}});
}

std::vector<float> read_exported_weights(const std::string& path, const ParamLayout& layout) {
  const SafetensorsFile file(path);
  std::vector<float> out(layout.total());
  std::set<std::string> expected;
  for (const ParamTensor& p : layout.tensors()) {
    const std::string name = exported_name(p.name);
    expected.insert(name);
    const SafetensorsTensor* t = file.find(name);
    if (!t)
      fail(path, "tensor " + name + " is missing (the configured model has it: check model.attention.mode, .pattern "
                                    "and model.attention.token_shift against the exported config.json)");
    const std::vector<int64_t> want(p.shape.begin(), p.shape.end());
    if (t->shape != want)
      fail(path, "tensor " + name + " has shape " + shape_text(t->shape) + ", the configured model expects " +
                     shape_text(want) + " (check model.d_model, model.n_heads and model.n_kv_heads against the " +
                     "exported config.json)");
    float* dst = out.data() + p.offset;
    if (t->dtype == "F32") {
      std::memcpy(dst, t->data, p.numel * sizeof(float));
    } else if (t->dtype == "BF16") {
      const auto* src = static_cast<const unsigned char*>(t->data);
      for (size_t i = 0; i < p.numel; ++i) dst[i] = from_bf16(uint16_t(src[2 * i] | (src[2 * i + 1] << 8)));
    } else {
      fail(path, "tensor " + name + " has dtype " + t->dtype + "; gfwa imports F32 or BF16");
    }
    for (size_t i = 0; i < p.numel; ++i)
      if (!std::isfinite(dst[i])) fail(path, "tensor " + name + " holds a non-finite value at element " + std::to_string(i));
  }
  for (const SafetensorsTensor& t : file.tensors())
    if (!expected.count(t.name))
      fail(path, "tensor " + t.name + " is not a parameter of the configured model (check model.attention.mode, "
                                      ".pattern and model.attention.token_shift against the exported config.json)");
  return out;
}

}  // namespace gfwa
