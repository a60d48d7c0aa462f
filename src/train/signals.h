// Preemption: SIGTERM, SIGINT and SIGUSR1 ask the trainer to stop after the current step, write a
// checkpoint and exit with kExitPreempted; a second such signal ends the process at once with
// kExitInterrupted, except the same signal again within one second (one request delivered to the
// process and to its process group, as GNU timeout does). Requeue scripts test for kExitPreempted.
#pragma once

namespace gfwa {

constexpr int kExitPreempted = 75;    // EX_TEMPFAIL: stopped cleanly on a signal, resumable
constexpr int kExitInterrupted = 130; // second signal: immediate exit, no checkpoint written
constexpr long long kDuplicateWindowNs = 1000000000;  // same signal again this soon: one request

class StopSignals {
 public:
  StopSignals();   // installs the handlers (one instance at a time); clears any earlier request
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  static bool requested();
  static int signal_number();  // the first signal received; 0 if none
};

}  // namespace gfwa
