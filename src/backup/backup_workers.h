#pragma once
// A few threads that run a backup's or restore's slow steps (sealing and writing objects, or
// fetching and opening them) while the calling thread reads and hashes the next chunk. The queue
// is bounded, so memory stays at (threads + max_queued) chunks whatever the backup's size. The
// first failing task stops the rest: later Submit calls return its status and queued tasks are
// dropped (callers that hand results back through a promise never fail a task; see
// cluster_backup.cc). Thread-safe; Finish (or the destructor) joins the threads.

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "crypto/secret_bytes.h"

namespace keyward {

class BackupWorkers {
 public:
  BackupWorkers(int threads, size_t max_queued);
  ~BackupWorkers();
  BackupWorkers(const BackupWorkers&) = delete;
  BackupWorkers& operator=(const BackupWorkers&) = delete;

  // Queues `task`, waiting while max_queued tasks wait. The first failure so far, if any (then
  // `task` is not queued).
  absl::Status Submit(std::function<absl::Status()> task);
  // Runs what is queued, joins the threads and returns the first failure.
  absl::Status Finish();

 private:
  void Run();

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable work_;   // a task queued, or closing
  std::condition_variable space_;  // a task taken, or a failure
  std::deque<std::function<absl::Status()>> queue_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Plaintext buffers of one size (SecretBytes: outside core dumps), reused: a backup or restore
// maps and faults them in once, not once per chunk. A buffer is wiped before it is reused.
// Thread-safe.
class ChunkBuffers {
 public:
  // A buffer taken from the pool; goes back (wiped) when destroyed.
  class Lease {
   public:
    Lease(ChunkBuffers* pool, SecretBytes bytes) : pool_(pool), bytes_(std::move(bytes)) {}
    ~Lease() { pool_->Give(std::move(bytes_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    SecretBytes& bytes() { return bytes_; }

   private:
    ChunkBuffers* pool_;
    SecretBytes bytes_;
  };

  ChunkBuffers(size_t count, size_t size);
  // Waits while every buffer is out.
  std::shared_ptr<Lease> Take();

 private:
  void Give(SecretBytes bytes);

  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<SecretBytes> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace keyward
