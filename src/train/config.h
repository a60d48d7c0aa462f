// The whole run configuration: typed structs filled from JSON (nlohmann/json) plus --set overrides.
// Every key is documented in docs/config.md; loading validates all of them.
#pragma once
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/dist_config.h"
#include "model/model_config.h"

namespace gfwa {

// Muon (optimizer.type "muon") for the hidden weight matrices; kernels/muon_step.h has the math.
struct MuonConfig {
  float lr = 0.02f;              // peak learning rate of the hidden matrices (the schedule scales it)
  float momentum = 0.95f;
  bool nesterov = true;
  int ns_steps = 5;              // Newton-Schulz iterations
  float weight_decay = 0.0f;     // decoupled, scaled by the Muon lr
};

struct OptimizerConfig {
  std::string type = "adamw";    // adamw | muon (Muon on the hidden matrices, AdamW on the rest)
  float lr = 6e-4f;              // peak learning rate (AdamW)
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;     // decoupled, 2-D weights only
  float grad_clip = 1.0f;        // global L2 norm; 0 disables
  MuonConfig muon;
};

struct ScheduleConfig {
  std::string type = "cosine";   // cosine | linear | constant | wsd
  int warmup_steps = 0;
  float final_lr_fraction = 0.1f;  // lr at the last step, as a fraction of the peak
  float decay_fraction = 0.2f;     // wsd only: share of the steps spent decaying
};

struct TrainConfig {
  std::string backend = "auto";  // auto | cpu | cuda
  uint64_t seed = 1337;
  int batch_size = 8;            // sequences per micro-batch (per rank)
  int seq_len = 1024;            // T
  int64_t tokens_per_step = 0;   // 0 => batch_size * seq_len * world size (no accumulation)
  int64_t max_steps = 1000;
  int64_t token_budget = 0;      // > 0 => stop when this many tokens were consumed
  int max_bad_steps = 5;         // consecutive non-finite steps before the run stops
  std::string recompute = "none";  // none | selective | full: activation recomputation (model/recompute.h)
};

struct EvalConfig {
  int every = 100;               // steps; 0 => only at the end
  int batches = 20;              // 0 => the whole validation split
  int sample_every = 0;          // steps between text samples; 0 => never
  int sample_tokens = 64;
  std::string sample_prompt = "\n";
  std::map<std::string, std::string> tasks;  // zero-shot task name -> its release file (docs/eval.md)
};

struct DataConfig {
  std::string train = "data/austen/train_*.bin";  // glob of token shards
  std::string val = "data/austen/val_*.bin";
  bool shuffle = true;
  std::string tokenizer = "data/tokenizer";        // folder with the GPT-2 BPE files
};

struct CheckpointConfig {
  int every = 0;                 // steps between checkpoints; 0 => only at the end and on signals
  int keep_last = 3;
  int keep_every = 0;            // also keep every M-th step forever; 0 => none
};

struct LoggingConfig {
  int every = 10;                // steps between console lines
  std::string level = "info";    // trace | debug | info | warn | error
};

struct RunConfig {
  ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainConfig train;
  EvalConfig eval;
  DataConfig data;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  DistributedConfig distributed;
};

// Any problem with a configuration; what() is one line naming the file and the key path.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace gfwa
