#include <chrono>
#include <csignal>
#include <thread>

#include <gtest/gtest.h>

#include "train/signals.h"

namespace gfwa {
namespace {

TEST(TrainSignals, FirstSignalOnlyRequestsAStop) {
  for (int sig : {SIGUSR1, SIGTERM, SIGINT}) {
    StopSignals stop;
    EXPECT_FALSE(StopSignals::requested());
    std::raise(sig);
    EXPECT_TRUE(StopSignals::requested());
    EXPECT_EQ(StopSignals::signal_number(), sig);
  }
}

TEST(TrainSignals, SecondSignalExitsAtOnce) {
  EXPECT_EXIT(
      {
        StopSignals stop;
        std::raise(SIGTERM);
        std::raise(SIGUSR1);
        std::_Exit(0);
      },
      testing::ExitedWithCode(kExitInterrupted), "");
}

// GNU timeout signals the child and then its process group: the child sees SIGTERM twice at once.
TEST(TrainSignals, SameSignalTwiceAtOnceIsOneRequest) {
  EXPECT_EXIT(
      {
        StopSignals stop;
        std::raise(SIGTERM);
        std::raise(SIGTERM);
        std::_Exit(StopSignals::requested() ? 0 : 3);
      },
      testing::ExitedWithCode(0), "");
}

TEST(TrainSignals, SameSignalAgainLaterExitsAtOnce) {
  EXPECT_EXIT(
      {
        StopSignals stop;
        std::raise(SIGTERM);
        std::this_thread::sleep_for(std::chrono::nanoseconds(kDuplicateWindowNs + 100000000));
        std::raise(SIGTERM);
        std::_Exit(0);
      },
      testing::ExitedWithCode(kExitInterrupted), "");
}

TEST(TrainSignals, HandlersAreRestoredAfterwards) {
  EXPECT_EXIT(
      {
        { StopSignals stop; }
        std::raise(SIGUSR1);
        std::_Exit(0);
      },
      testing::KilledBySignal(SIGUSR1), "");
}

}  // namespace
}  // namespace gfwa
