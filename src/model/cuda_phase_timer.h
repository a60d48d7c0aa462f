// Per-phase device time of the cuda backend's training step, on when GFWA_CUDA_PROFILE is set in
// the environment: events recorded between phases, summed per phase name, reported (spdlog) when
// the backend is destroyed. The first kWarmupSteps steps are left out. Off (the default), every
// call returns at once.
#pragma once
#ifdef GFWA_WITH_CUDA
#include <cuda_runtime.h>

#include <string>
#include <utility>
#include <vector>

namespace gfwa {

class PhaseTimer {
 public:
  PhaseTimer();
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  bool on() const { return on_; }
  void begin(cudaStream_t s);                   // starts a pass (a step, an evaluation, an update)
  void mark(const char* name, cudaStream_t s);  // the work since the previous mark is phase `name`
  // Put before the names of the marks that follow, until set back to "" (e.g. "recompute: ").
  void set_prefix(const char* prefix) { prefix_ = prefix; }
  void end(bool counts_as_step);                // waits for the pass and adds its phases up
  void report() const;

 private:
  bool on_;
  std::vector<cudaEvent_t> pool_;
  std::vector<std::string> names_;
  std::string prefix_;
  size_t used_ = 0;
  std::vector<std::pair<std::string, double>> total_;
  int steps_ = 0, seen_ = 0;
  static constexpr int kWarmupSteps = 2;
};

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
