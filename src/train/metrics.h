// What a run reports: the spdlog console + file logger, the JSONL metrics file, and the FLOPs
// behind MFU (the peak and the memory in use are the backend's: Backend::peak_flops, memory_in_use).
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "model/model_config.h"

namespace gfwa {

// Makes the default spdlog logger write to the console and, when log_file is not empty, append to
// that file. level: trace | debug | info | warn | error (anything else throws naming the value).
void setup_logging(const std::string& log_file, const std::string& level);

// One JSON object per line, flushed at once so a killed run keeps every line it printed.
class MetricsWriter {
 public:
  // Opens path for appending, after dropping the records of steps after `resume_step` (a run that
  // went past its last checkpoint; 0 for a fresh start), so the file reads as one run.
  MetricsWriter(const std::string& path, int64_t resume_step);
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

// Mean number of keys a query attends to over a sequence of length T (docs/gatedfwa.md section 5),
// averaged over the layers, each with its own mode and window (model.attention.pattern); an nsa layer
// counts the keys of its three branches (nsa_pairs).
double mean_attended_keys(const ModelConfig& model, int T);

// Model FLOPs per trained token (forward + backward): 6 * N + 12 * L * d_model * ctx.
double flops_per_token(const ModelConfig& model, int64_t n_params, int T);

}  // namespace gfwa
