// Picks and builds a backend (train.backend: auto | cpu | cuda) from what it must hold; nothing
// here knows the run configuration (train/backend_spec.h derives a spec from it).
#pragma once
#include <memory>
#include <string>

#include "model/backend.h"
#include "model/model_config.h"
#include "model/recompute.h"

namespace gfwa {

struct BackendSpec {
  std::string kind = "auto";        // auto | cpu | cuda
  ModelConfig model;
  int max_batch = 1, max_len = 1;   // forward_backward takes micro-batches up to max_batch x max_len
  // ZeRO-1 (docs/distributed.md): this rank of zero1_world keeps optimizer state for its shard
  // only; zero1_world 0 keeps it whole. It sizes the buffers, so it is fixed here.
  int zero1_rank = 0, zero1_world = 0;
  bool muon = false;  // optimizer.type muon: the cuda backend plans Muon's scratch (muon_update)
  // train.recompute: which activations the cuda backend keeps for the backward (the cpu backend
  // keeps all of them whatever the level; either way the results are the same bits).
  Recompute recompute = Recompute::none;
};

// The concrete backend for `requested`: "auto" resolves to the best one this build can run.
// Throws std::runtime_error naming train.backend when the requested backend is unavailable.
std::string resolve_backend_name(const std::string& requested);

// What a backend kind can run, answered before one is built (a refused run must stop before any
// rank waits for another): "" when it can, else why not, in one line.
std::string model_support_problem(const std::string& kind, const ModelConfig& model);  // names model.n_heads
std::string data_parallel_problem(const std::string& kind, int world);                  // names train.backend
// The NSA settings (model.attention.nsa) a kind cannot run, for a model with nsa layers: the cuda backend's
// kernels take blocks of 64 and top_k <= 64. `key` names the setting; both empty when the kind can run it.
struct KeyProblem {
  std::string key, problem;
};
KeyProblem nsa_support_problem(const std::string& kind, const ModelConfig& model);

// A backend for this process. Throws std::runtime_error when the kind is unavailable and
// std::invalid_argument when it cannot run the spec (the problems above).
std::unique_ptr<Backend> make_backend(const BackendSpec& spec);

}  // namespace gfwa
