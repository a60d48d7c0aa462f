// `gfwa export`: a checkpoint's weights as a self-describing folder for other tools
// (docs/interop.md):
//   model.safetensors   the parameters under LLaMA-style names (model/exported_weights.h)
//   config.json         the model hyperparameters under Hugging Face-style names, and the tokenizer
//   r50k_base.tiktoken  the tokenizer's vocabulary, when found (data.tokenizer) with the right checksum
// The folder is written under a temporary name and renamed into place: it is complete or absent.
// Its content depends only on the weights and the model configuration, so exporting a run that
// started from an export (model.init_from) and did not change the weights gives the same bytes.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "model/exported_weights.h"
#include "train/config.h"

namespace gfwa {

// config.json of an export. tokenizer is the checkpoint's record ({"vocab": file, "sha256": hex}).
nlohmann::json exported_config(const RunConfig& cfg, WeightDtype dtype, const nlohmann::json& tokenizer);

// Exports the checkpoint directory (verified on load) into out_dir, which must not exist or be an
// empty directory. Returns a one-line summary. Throws std::runtime_error naming the path.
std::string export_checkpoint(const std::string& checkpoint_dir, const std::string& out_dir, WeightDtype dtype);

}  // namespace gfwa
