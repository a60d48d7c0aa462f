// The ranks of a run as the trainer sees them: who this process is, and host-side sums across all
// ranks so that every rank logs the same numbers and takes the same decisions (skip a non-finite
// step, stop on a signal, declare a checkpoint complete). A single process is a group of one whose
// sums are the identity, so the trainer has one code path.
#pragma once
#include <memory>

#include "dist/dist_config.h"
#include "dist/env.h"

namespace gfwa::dist {

class Collectives;

class Group {
 public:
  virtual ~Group() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place: values[i] becomes the sum of values[i] over all ranks. Collective: every rank calls
  // it, in the same order. Throws DistError when a peer does not take part within the timeout.
  virtual void sum(double* values, int n) = 0;
  // The collectives the backend reduces gradients with; nullptr for a single process.
  virtual Collectives* collectives() { return nullptr; }
};

// True on every rank when `mine` is true on any rank (collective).
bool any_rank(Group& g, bool mine);
// True on every rank when `mine` is true on every rank (collective).
bool all_ranks(Group& g, bool mine);

// One process, no launcher: sums are the identity.
class SingleProcess final : public Group {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void sum(double*, int) override {}
};

// Whether this run joins a data-parallel group: world > 1, or a launcher that sets the variables
// explicitly even for one process (the NCCL path is then used, which a 1-rank launch tests).
bool wants_data_parallel(const DistEnv& env);

// NCCL group over env's ranks (CUDA builds): selects this rank's GPU, shares the NCCL id and joins.
// Throws DistError naming the rank and address that did not answer; in a build without CUDA,
// throws saying data-parallel training needs one.
std::unique_ptr<Group> join_group(const DistEnv& env, const DistributedConfig& cfg);

}  // namespace gfwa::dist
