#pragma once
// A fixed set of worker threads running tasks in FIFO order. The RESP server runs every cluster's
// commands here, one round of one cluster per task (server/cluster_executor.h), so the number of
// threads doing storage work is bounded however many clusters and connections there are.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace keyward {

class WorkerPool {
 public:
  // `threads` 0: max(4, hardware_concurrency). At least 4 because a round can block its worker
  // on the disk (a WAL fsync, SAVE's compaction): two such clusters must not stop the others.
  explicit WorkerPool(size_t threads);
  ~WorkerPool();  // Stop()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Post(std::function<void()> task);
  // Runs `fn` once on every worker thread (after the task each is running) and returns when all
  // have, or after `max_wait` (the rest still run `fn` as soon as their current task ends): for
  // work that must happen on the threads themselves, like wiping their dead stack frames, without
  // letting one tenant's long command hold up a caller such as a key cut. Never call it from a
  // worker.
  void RunOnEveryWorker(const std::function<void()>& fn,
                        std::chrono::milliseconds max_wait = std::chrono::milliseconds(200));
  // Runs what is queued, then joins the threads. Tasks posted afterwards are dropped.
  void Stop();
  size_t size() const { return threads_.size(); }
  // No task waits for a worker: a worker may keep going with its own work instead of yielding.
  bool NoneWaiting();
  bool OnWorkerThread() const;

 private:
  void Loop(size_t index);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  // Per-worker tasks (RunOnEveryWorker), run before the shared queue.
  std::vector<std::deque<std::function<void()>>> own_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t sleeping_ ABSL_GUARDED_BY(mu_) = 0;  // workers in (or entering) cv_.wait
  size_t waking_ ABSL_GUARDED_BY(mu_) = 0;    // notified by Post and not yet out of the wait
  std::vector<std::thread> threads_;
};

}  // namespace keyward
