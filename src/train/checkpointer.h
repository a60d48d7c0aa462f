// A run's checkpoints as the trainer sees them: what a checkpoint of a run holds (the state.json
// schema below), saving it (one directory, or every rank's part committed together), and
// restoring a run from one. The file format itself (checksums, temporary directories, atomic
// commit, validity) is train/checkpoint.h.
//
// state.json: step, tokens, updates, bad_streak (progress); world (ranks that wrote it);
// total_steps and lr (the schedule at that step, for readers); sample_rng (text-sample stream);
// loader (data-loader position; per rank in the rank parts when data-parallel); tokenizer (vocab
// file and its SHA-256); data-parallel only: rank_parts (= world) and zero1.
#pragma once
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dist/group.h"
#include "model/backend.h"
#include "train/config.h"

namespace gfwa {

// The progress of a run that a checkpoint carries besides the model and optimizer state.
struct RunProgress {
  int64_t step = 0, tokens = 0, updates = 0;
  int bad_streak = 0;
  std::mt19937_64 sample_rng;
  nlohmann::json loader;  // this rank's data-loader state
};

class Checkpointer {
 public:
  // root: the run's checkpoints folder. group: the ranks of the run; data_parallel: each rank
  // writes its part (its loader position, its ZeRO-1 optimizer shard), so saving is collective.
  Checkpointer(const RunConfig& cfg, std::string root, dist::Group& group, bool data_parallel);

  // Writes root/step_<p.step> and prunes older ones (checkpoint.keep_last, keep_every: the newest
  // keep_last *valid* ones stay, an invalid one among them is set aside, train/checkpoint.h); returns
  // the directory. Data-parallel: rank 0 writes the model and commits only once every rank wrote
  // its part, so a step_* directory is always complete. Throws CheckpointError (on every rank
  // when any rank failed), leaving the checkpoints already there untouched.
  std::string save(Backend& backend, const RunProgress& p, int64_t total_steps);

  // Loads a checkpoint into the backend (parameters, optimizer state; ZeRO-1 shards of every
  // rank put back in place) after checking that it fits this run: the keys a resume cannot
  // change, the world size, the parameter count, and the state.json fields (integers in range,
  // updates <= step, a readable sample_rng; CheckpointError naming the file and field). Returns
  // the progress with this rank's loader.
  RunProgress restore(const std::string& dir, Backend& backend);

 private:
  nlohmann::json state_json(const RunProgress& p, int64_t total_steps) const;
  std::string save_parts(Backend& backend, const RunProgress& p, int64_t total_steps);
  void restore_optimizer(const std::string& dir, Backend& backend, std::vector<float>& m, std::vector<float>& v,
                         int parts);

  const RunConfig& cfg_;
  const std::string root_;
  dist::Group& group_;
  const bool data_parallel_;
  std::set<std::string> verified_;  // checkpoints known valid (written or restored here): pruning trusts them
};

// Keys whose values differ between a checkpoint's config and the current one and that a resume
// cannot change: model.* (but model.init_from), data.*, train.seq_len, train.batch_size,
// train.tokens_per_step, train.seed, optimizer.type. A key the checkpoint lacks (it predates the
// key) matches when it now holds its default. Each entry reads "key (checkpoint X, now Y)".
std::vector<std::string> incompatible_keys(const nlohmann::json& saved, const nlohmann::json& now);

}  // namespace gfwa
