#include "server/worker_pool.h"

#include <algorithm>
#include <future>

namespace keyward {

namespace {
thread_local const WorkerPool* tls_pool = nullptr;
}  // namespace

WorkerPool::WorkerPool(size_t threads) {
  if (threads == 0) threads = std::max<size_t>(4, std::thread::hardware_concurrency());
  {
    std::lock_guard<std::mutex> lock(mu_);
    own_.resize(threads);
  }
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this, i] { Loop(i); });
}

WorkerPool::~WorkerPool() { Stop(); }

bool WorkerPool::NoneWaiting() {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.empty();
}

bool WorkerPool::OnWorkerThread() const { return tls_pool == this; }

void WorkerPool::Post(std::function<void()> task) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(task));
    // Wake a sleeping worker only if the ones already woken will not take every queued task:
    // the loop posts one round per busy cluster in a pass, and waking a worker per post made
    // them queue on this mutex (futex waits and context switches: 20 busy clusters cost ~30 %
    // more CPU per command than one).
    wake = sleeping_ > waking_ && tasks_.size() > waking_;
    if (wake) ++waking_;
  }
  if (wake) cv_.notify_one();
}

void WorkerPool::RunOnEveryWorker(const std::function<void()>& fn,
                                  std::chrono::milliseconds max_wait) {
  std::vector<std::future<void>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    for (auto& q : own_) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      q.push_back([fn, p] {
        fn();
        p->set_value();
      });
    }
  }
  cv_.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + max_wait;
  for (auto& f : done) f.wait_until(deadline);
}

void WorkerPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::Loop(size_t index) {
  tls_pool = this;
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++sleeping_;
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty() || !own_[index].empty(); });
      --sleeping_;
      if (waking_ > 0) --waking_;
      if (!own_[index].empty()) {
        task = std::move(own_[index].front());
        own_[index].pop_front();
      } else if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      } else {
        return;  // stopping and nothing left
      }
    }
    task();
  }
}

}  // namespace keyward
