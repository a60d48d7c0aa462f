// Model weights as a safetensors file under LLaMA-style tensor names (docs/interop.md lists every
// name, shape and meaning): what `gfwa export` writes and `model.init_from` reads. The mapping from
// our ParamLayout names lives here, next to the layout, so the two change together.
#pragma once
#include <string>
#include <vector>

#include "model/param_layout.h"

namespace gfwa {

enum class WeightDtype { f32, bf16 };

// "f32"/"fp32"/"float32" or "bf16"/"bfloat16"; throws std::invalid_argument naming the value.
WeightDtype parse_weight_dtype(const std::string& s);
const char* weight_dtype_name(WeightDtype d);  // "fp32" or "bf16"

// "layers.3.attn.wq" -> "model.layers.3.self_attn.q_proj.weight"; throws std::invalid_argument for
// a name the layout never produces.
std::string exported_name(const std::string& layout_name);

// Writes params (fp32, ParamLayout order) to path atomically; bf16 rounds to nearest even.
void write_exported_weights(const std::string& path, const ParamLayout& layout, const std::vector<float>& params,
                            WeightDtype dtype);

// Reads path into fp32 values in ParamLayout order. Every tensor of the layout must be there under
// its exported name with its exact shape and dtype F32 or BF16 (converted exactly to fp32), and
// nothing else may be; values must be finite. Errors (SafetensorsError) name the file and tensor.
std::vector<float> read_exported_weights(const std::string& path, const ParamLayout& layout);

}  // namespace gfwa
