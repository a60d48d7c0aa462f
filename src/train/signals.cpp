#include "train/signals.h"

#include <unistd.h>

#include <cstdint>

#include <csignal>
#include <ctime>

namespace gfwa {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1};
volatile std::sig_atomic_t g_signal = 0;
volatile int64_t g_first_ns = 0;  // written by the handler before g_signal, read only by it
struct sigaction g_previous[sizeof(kSignals) / sizeof(kSignals[0])];

int64_t monotonic_ns() {  // clock_gettime is async-signal-safe
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// GNU timeout, srun and some batch systems signal both the process and its process group, so one
// request can arrive twice: the same signal again within kDuplicateWindowNs is that request.
extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) {
    if (sig == g_signal && monotonic_ns() - g_first_ns < kDuplicateWindowNs) return;
    ::_exit(kExitInterrupted);
  }
  g_first_ns = monotonic_ns();
  g_signal = sig;
}

}  // namespace

StopSignals::StopSignals() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a signal must not fail the write of the checkpoint it asks for
  for (size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i) sigaction(kSignals[i], &sa, &g_previous[i]);
}

StopSignals::~StopSignals() {
  for (size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
}

bool StopSignals::requested() { return g_signal != 0; }
int StopSignals::signal_number() { return g_signal; }

}  // namespace gfwa
