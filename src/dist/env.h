// Who this process is in a data-parallel run, read from the launcher's environment:
// torchrun-style variables first, then OpenMPI, then Slurm (srun), else a single process.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "dist/dist_config.h"

namespace gfwa::dist {

struct DistEnv {
  int rank = 0;
  int world = 1;
  int local_rank = 0;       // index of this process on its node: the GPU it uses
  int local_world = 1;      // processes on this node (= world when the launcher does not say)
  std::string master_addr;  // rank 0's host, for the tcp id exchange ("" when not needed)
  int master_port = 0;
  std::string launcher;     // torchrun | openmpi | slurm | single
  std::string run_id;       // launcher's id of this run ("" if none); guards the file exchange

  bool distributed() const { return world > 1; }
};

// Value of an environment variable; nullopt when unset. Empty values count as unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
std::optional<std::string> process_env(const std::string& name);

// Throws DistError naming the variable on a missing, non-integer or inconsistent value.
DistEnv read_dist_env(const EnvLookup& env = process_env);

// What the id exchange of a multi-process run needs, checked apart from read_dist_env so that a run
// that cannot go distributed anyway (the cpu backend) says that first: throws DistError when the
// tcp exchange has no MASTER_ADDR, or the file exchange no distributed.id_file.
void check_id_exchange(const DistEnv& env, const DistributedConfig& cfg);

constexpr int kDefaultMasterPort = 29500;

// The CUDA device of this rank among `visible` devices: its local rank, or 0 when the launcher
// gave each process a single GPU (srun --gpus-per-task=1, CUDA_VISIBLE_DEVICES per rank).
// Throws DistError when the node shows fewer GPUs than its local ranks need.
int cuda_device_for(const DistEnv& env, int visible);

}  // namespace gfwa::dist
