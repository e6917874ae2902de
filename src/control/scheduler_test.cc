#include "control/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace keyward {
namespace {

TEST(SchedulerTest, PeriodicTasksRunWhenTheClockSaysSo) {
  int64_t now = 1'000'000;
  Scheduler s([&] { return now; });
  int runs = 0;
  s.Every("tick", 30'000, 0, [&] { ++runs; });
  EXPECT_EQ(s.RunDueForTest(), 0);  // first run is one period away
  now += 29'999;
  EXPECT_EQ(s.RunDueForTest(), 0);
  now += 1;
  EXPECT_EQ(s.RunDueForTest(), 1);
  EXPECT_EQ(runs, 1);
  now += 30'000;
  s.RunDueForTest();
  EXPECT_EQ(runs, 2);
}

TEST(SchedulerTest, JitterStaysWithinItsBounds) {
  int64_t now = 0;
  Scheduler s([&] { return now; });
  int runs = 0;
  s.Every("tick", 10'000, 0.1, [&] { ++runs; });
  now = 8'999;
  s.RunDueForTest();
  EXPECT_EQ(runs, 0) << "ran before period - 10 %";
  now = 11'001;
  s.RunDueForTest();
  EXPECT_EQ(runs, 1) << "did not run by period + 10 %";
}

TEST(SchedulerTest, SubmittedJobsRunOnce) {
  Scheduler s([] { return int64_t{0}; });
  int runs = 0;
  s.Submit("job", [&] { ++runs; });
  s.RunDueForTest();
  s.RunDueForTest();
  EXPECT_EQ(runs, 1);
}

TEST(SchedulerTest, RealThreadsRunJobsAndSkipOverlappingRuns) {
  Scheduler s(nullptr, 2);
  std::atomic<int> concurrent{0}, max_concurrent{0}, runs{0};
  s.Every("slow", 5, 0, [&] {
    int c = ++concurrent;
    max_concurrent = std::max(max_concurrent.load(), c);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    --concurrent;
    ++runs;
  });
  std::atomic<bool> job_ran{false};
  s.Submit("job", [&] { job_ran = true; });
  s.Start();
  // Until a few runs happened (a loaded machine or a sanitizer build may take far longer than
  // the 5 ms period suggests), with a generous cap.
  for (int i = 0; i < 1000 && (runs.load() < 3 || !job_ran); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  s.Stop();
  EXPECT_TRUE(job_ran);
  EXPECT_GE(runs.load(), 2);
  EXPECT_EQ(max_concurrent.load(), 1) << "two runs of one periodic task overlapped";
}

}  // namespace
}  // namespace keyward
