#include "train/signals.h"

#include <unistd.h>

#include <csignal>

namespace gfwa {
namespace {

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1};
volatile std::sig_atomic_t g_signal = 0;
struct sigaction g_previous[sizeof(kSignals) / sizeof(kSignals[0])];

extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) ::_exit(kExitInterrupted);
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
