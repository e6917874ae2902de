#pragma once
// The one home of keyward's background work: key health checks, re-wraps, data-key rotation,
// re-encryption and, later, scheduled backups. Periodic tasks run on a small worker pool, never
// two runs of one task at once (a run that is still going when the next is due is skipped), and
// one-off jobs are queued on the same pool.
//
// Time comes from an injectable clock. `Start()` runs the timer and workers on real threads;
// tests leave the scheduler stopped, move their clock and call `RunDueForTest()`, which runs
// every due task on the calling thread — no sleeping in tests.
// Thread-safe.

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace keyward {

class Scheduler {
 public:
  using Task = std::function<void()>;

  // `now_ms` is the clock (milliseconds); nullptr: the system clock.
  explicit Scheduler(std::function<int64_t()> now_ms = nullptr, int workers = 4);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `task` every `period_ms`, each period stretched or shrunk by up to `jitter` (0.1 =
  // ±10 %) so that many servers do not call a KMS in lockstep. The first run is one period away.
  void Every(const std::string& name, int64_t period_ms, double jitter, Task task);
  // Queues `task` to run once, as soon as a worker is free.
  void Submit(const std::string& name, Task task);

  void Start();
  // Stops the timer, lets running tasks finish and drops queued ones. Idempotent.
  void Stop();

  // Test driver (scheduler not started): runs every periodic task due at the clock's now and
  // every queued job, on the calling thread. Returns how many ran.
  int RunDueForTest();
  int64_t NowMs() const { return now_ms_(); }

 private:
  struct Periodic {
    std::string name;
    int64_t period_ms = 0;
    double jitter = 0;
    Task task;
    int64_t next_ms = 0;
    bool running = false;
  };
  struct Job {
    std::string name;
    std::function<void()> run;
  };

  int64_t NextDelayLocked(const Periodic& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves due periodic tasks to the job queue (marking them running).
  void EnqueueDueLocked(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerLoop();
  void WorkerLoop();

  const std::function<int64_t()> now_ms_;
  const int workers_;
  std::mutex mu_;
  std::condition_variable timer_cv_;
  std::condition_variable work_cv_;
  std::vector<std::unique_ptr<Periodic>> periodic_ ABSL_GUARDED_BY(mu_);
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // touched only by Start/Stop
};

}  // namespace keyward
