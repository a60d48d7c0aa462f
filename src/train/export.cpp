#include "train/export.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "data/sha256.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "model/param_layout.h"
#include "train/checkpoint.h"
#include "train/config_io.h"
#include "train/config_schema.h"

namespace gfwa {
namespace fs = std::filesystem;
namespace {

constexpr int kExportFormat = 2;  // 2: layer_attention, each layer's mode and window

// A float as the shortest decimal that reads back to it (1e-06, not 9.99999997e-07).
nlohmann::json number(float f) { return nlohmann::json::parse(config_schema::float_text(f)); }

// Writes text to a new file and fsyncs it; the caller renames the whole folder into place.
void write_new_file(const std::string& path, const std::string& text) {
  write_file_synced(path, [&](FileSink& f) { f.write(text.data(), text.size()); });
}

// "" when the export format describes every layer of the model, else why not, naming the layer.
std::string export_support_problem(const ModelConfig& m) {
  const std::string nsa = m.first_nsa_layer_text();
  if (nsa.empty()) return "";
  return nsa + ", which the export format and the PyTorch reference (python/gfwa_torch.py) do not describe " +
         "yet: nothing was exported";
}

}  // namespace

nlohmann::json exported_config(const RunConfig& cfg, WeightDtype dtype, const nlohmann::json& tokenizer) {
  const ModelConfig& m = cfg.model;
  auto window = [](const LayerAttention& a) {
    return a.mode == AttnMode::full ? nlohmann::json() : nlohmann::json(a.window);
  };
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < m.n_layers; ++l) {
    const LayerAttention a = m.layer_attention(l);
    layers.push_back({{"attention_mode", attn_mode_name(a.mode)}, {"sliding_window", window(a)}});
  }
  nlohmann::json j = {
      {"architectures", {"GatedFWAForCausalLM"}},
      {"model_type", "gfwa"},
      {"gfwa_export_format", kExportFormat},
      {"vocab_size", m.vocab_size},
      {"hidden_size", m.d_model},
      {"num_hidden_layers", m.n_layers},
      {"num_attention_heads", m.n_heads},
      {"num_key_value_heads", m.kv_heads()},
      {"head_dim", m.head_dim()},
      {"intermediate_size", m.hidden()},
      {"hidden_act", "silu"},
      {"rms_norm_eps", number(m.norm_eps)},
      {"rope_theta", number(m.attention.rope_theta)},
      {"attention_mode", attn_mode_name(m.attention.mode)},
      {"sliding_window", window({m.attention.mode, m.attention.window})},
      {"layer_attention", layers},
      {"token_shift", m.attention.token_shift},
      {"tie_word_embeddings", true},
      {"max_position_embeddings", cfg.train.seq_len},
      {"torch_dtype", dtype == WeightDtype::bf16 ? "bfloat16" : "float32"},
      {"tokenizer", tokenizer},
  };
  if (m.vocab_size > Tokenizer::kEndOfText) j["eos_token_id"] = Tokenizer::kEndOfText;
  return j;
}

std::string export_checkpoint(const std::string& checkpoint_dir, const std::string& out_dir, WeightDtype dtype) {
  const CheckpointData ck = load_checkpoint(checkpoint_dir);
  const RunConfig cfg = config_from_json(ck.config, checkpoint_dir + "/config.json");
  const std::string unsupported = export_support_problem(cfg.model);
  if (!unsupported.empty()) throw std::runtime_error(checkpoint_dir + ": " + unsupported);
  const ParamLayout layout(cfg.model);
  if (ck.params.size() != layout.total())
    throw std::runtime_error(checkpoint_dir + "/model.bin holds " + std::to_string(ck.params.size()) +
                             " parameters, its config.json describes " + std::to_string(layout.total()));
  fs::path out(out_dir);
  if (!out.has_filename()) out = out.parent_path();  // "dir/" -> "dir"
  std::error_code ec;
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec)))
    throw std::runtime_error(out.string() + " exists and is not an empty directory: choose another --out or remove it");
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  const std::string tmp = out.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec)) throw std::runtime_error(tmp + ": cannot create directory: " + ec.message());

  std::string tokenizer_note;
  try {
    write_exported_weights(tmp + "/model.safetensors", layout, ck.params, dtype);
    nlohmann::json tokenizer = ck.state.value("tokenizer", nlohmann::json::object());
    write_new_file(tmp + "/config.json", exported_config(cfg, dtype, tokenizer).dump(2) + "\n");
    // The vocabulary travels with the weights when it is here and is the one the checkpoint names.
    const std::string vocab = tokenizer.value("vocab", ""), src = cfg.data.tokenizer + "/" + vocab;
    if (!vocab.empty() && fs::exists(src, ec) && sha256_file_hex(src) == tokenizer.value("sha256", "")) {
      write_new_file(tmp + "/" + fs::path(vocab).filename().string(), read_file(src));
      tokenizer_note = "copied " + vocab;
    } else {
      tokenizer_note = vocab.empty() ? "none recorded" : src + " not found or differs: config.json records its sha256";
    }
    if (::rename(tmp.c_str(), out.c_str()) != 0)
      throw std::runtime_error("cannot rename " + tmp + " to " + out.string() + ": " + std::strerror(errno));
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return "exported " + std::to_string(layout.tensors().size()) + " tensors (" + std::to_string(layout.total()) +
         " parameters, " + weight_dtype_name(dtype) + ") of " + checkpoint_dir + " to " + out.string() +
         "; tokenizer: " + tokenizer_note;
}

}  // namespace gfwa
