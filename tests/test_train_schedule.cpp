#include <gtest/gtest.h>

#include "train/schedule.h"

namespace gfwa {
namespace {

ScheduleConfig sched(const char* type, int warmup, float final_fraction, float decay_fraction = 0.2f) {
  ScheduleConfig s;
  s.type = type;
  s.warmup_steps = warmup;
  s.final_lr_fraction = final_fraction;
  s.decay_fraction = decay_fraction;
  return s;
}

void expect_lrs(const ScheduleConfig& s, double peak, const std::vector<double>& want) {
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(lr_at(s, peak, int64_t(i), int64_t(want.size())), want[i], 1e-7 * peak)  // fractions are floats in the config
        << s.type << " step " << i;
}

// Values computed by hand: warmup (s+1)/w; then p = (s+1-start)/(total-start).
TEST(TrainSchedule, CosineWithWarmup) {
  // p = 0.25, 0.5, 0.75, 1: 0.1 + 0.9 * (1 + cos(pi p)) / 2
  expect_lrs(sched("cosine", 2, 0.1f), 2.0,
             {1.0, 2.0, 2 * 0.8681980515339464, 2 * 0.55, 2 * 0.23180194846605362, 2 * 0.1});
}

TEST(TrainSchedule, LinearWithWarmup) {
  expect_lrs(sched("linear", 2, 0.1f), 1.0, {0.5, 1.0, 0.775, 0.55, 0.325, 0.1});
}

TEST(TrainSchedule, LinearWithoutWarmupEndsAtZero) {
  expect_lrs(sched("linear", 0, 0.0f), 4.0, {3.0, 2.0, 1.0, 0.0});
}

TEST(TrainSchedule, ConstantIgnoresTheFinalFraction) {
  expect_lrs(sched("constant", 3, 0.1f), 3.0, {1.0, 2.0, 3.0, 3.0, 3.0});
}

TEST(TrainSchedule, WarmupStableDecay) {
  // 10 steps, 30% decay: stable through step 6, then 0.7, 0.4, 0.1.
  expect_lrs(sched("wsd", 1, 0.1f, 0.3f), 1.0, {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.4, 0.1});
}

TEST(TrainSchedule, WsdDecayNeverStartsInsideWarmup) {
  // 4 steps, 90% decay would start at step 0; it starts after the 2 warmup steps instead.
  expect_lrs(sched("wsd", 2, 0.0f, 0.9f), 1.0, {0.5, 1.0, 0.5, 0.0});
}

TEST(TrainSchedule, UnknownTypeIsRejected) {
  EXPECT_THROW(lr_at(sched("exp", 0, 0.1f), 1.0, 3, 10), std::invalid_argument);
}

TEST(TrainSchedule, TotalStepsFromTokenBudgetRoundsUp) {
  TrainConfig t;
  t.max_steps = 77;
  EXPECT_EQ(total_steps(t, 300), 77);
  t.token_budget = 1000;
  EXPECT_EQ(total_steps(t, 300), 4);
  t.token_budget = 900;
  EXPECT_EQ(total_steps(t, 300), 3);
}

}  // namespace
}  // namespace gfwa
