#include "backup/backup_workers.h"

#include <string.h>

#include <utility>

namespace keyward {

BackupWorkers::BackupWorkers(int threads, size_t max_queued) : max_queued_(max_queued) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

BackupWorkers::~BackupWorkers() { Finish().IgnoreError(); }

absl::Status BackupWorkers::Submit(std::function<absl::Status()> task) {
  std::unique_lock<std::mutex> lock(mu_);
  space_.wait(lock, [&] { return queue_.size() < max_queued_ || !status_.ok(); });
  if (!status_.ok()) return status_;
  queue_.push_back(std::move(task));
  work_.notify_one();
  return absl::OkStatus();
}

absl::Status BackupWorkers::Finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  work_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void BackupWorkers::Run() {
  for (;;) {
    std::function<absl::Status()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_.wait(lock, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
      if (!status_.ok()) {
        // A task failed: the rest are dropped (destroyed outside the lock, below).
        lock.unlock();
        space_.notify_all();
        continue;
      }
    }
    space_.notify_all();
    absl::Status st = task();
    task = nullptr;  // its buffers (wiped plaintext) go now, not when the next task arrives
    if (!st.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (status_.ok()) status_ = std::move(st);
      }
      space_.notify_all();
    }
  }
}

ChunkBuffers::ChunkBuffers(size_t count, size_t size) {
  for (size_t i = 0; i < count; ++i) free_.emplace_back(size);
}

std::shared_ptr<ChunkBuffers::Lease> ChunkBuffers::Take() {
  std::unique_lock<std::mutex> lock(mu_);
  returned_.wait(lock, [&] { return !free_.empty(); });
  SecretBytes b = std::move(free_.back());
  free_.pop_back();
  return std::make_shared<Lease>(this, std::move(b));
}

void ChunkBuffers::Give(SecretBytes bytes) {
  // explicit_bzero: glibc's vectorised memset, which the compiler may not drop either.
  // OPENSSL_cleanse's x86-64 loop stores 8 bytes at a time: in the profile of a restore its
  // wipe of each chunk cost half as much as opening (AES-GCM) the chunk.
  if (!bytes.empty()) explicit_bzero(bytes.data(), bytes.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(bytes));
  }
  returned_.notify_one();
}

}  // namespace keyward
