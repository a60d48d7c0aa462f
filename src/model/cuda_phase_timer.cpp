#ifdef GFWA_WITH_CUDA
#include "model/cuda_phase_timer.h"

#include <algorithm>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "kernels/cuda_check.h"

namespace gfwa {

PhaseTimer::PhaseTimer() : on_(std::getenv("GFWA_CUDA_PROFILE") != nullptr) {}

PhaseTimer::~PhaseTimer() {
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
}

void PhaseTimer::begin(cudaStream_t s) {
  used_ = 0;
  mark("", s);
}

void PhaseTimer::mark(const char* name, cudaStream_t s) {
  if (!on_) return;
  if (used_ == pool_.size()) {
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreate(&e));
    pool_.push_back(e);
    names_.push_back("");
  }
  CUDA_CHECK(cudaEventRecord(pool_[used_], s));
  names_[used_++] = prefix_ + name;
}

void PhaseTimer::end(bool counts_as_step) {
  if (!on_ || used_ == 0) return;
  CUDA_CHECK(cudaEventSynchronize(pool_[used_ - 1]));
  for (size_t i = 1; i < used_; ++i) {
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, pool_[i - 1], pool_[i]));
    auto it = std::find_if(total_.begin(), total_.end(), [&](const auto& p) { return p.first == names_[i]; });
    if (it == total_.end()) total_.emplace_back(names_[i], ms);
    else it->second += ms;
  }
  steps_ += counts_as_step;
  if (counts_as_step && ++seen_ <= kWarmupSteps) {  // plan creation and lazy module loading
    total_.clear();
    steps_ = 0;
  }
}

void PhaseTimer::report() const {
  if (!on_ || steps_ == 0) return;
  auto rows = total_;
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  double sum = 0.0;
  for (const auto& r : rows) sum += r.second;
  spdlog::info("cuda backend profile: {:.2f} ms of device time per step over {} steps", sum / steps_, steps_);
  for (const auto& r : rows)
    spdlog::info("  {:<28s} {:>9.3f} ms  {:>5.1f}%", r.first, r.second / steps_, 100.0 * r.second / sum);
}

}  // namespace gfwa
#endif  // GFWA_WITH_CUDA
