#include "control/scheduler.h"

#include <chrono>

#include "crypto/random.h"
#include "util/clock.h"

namespace keyward {

Scheduler::Scheduler(std::function<int64_t()> now_ms, int workers)
    : now_ms_(now_ms ? std::move(now_ms) : SystemNowMs), workers_(workers < 1 ? 1 : workers) {}

Scheduler::~Scheduler() { Stop(); }

int64_t Scheduler::NextDelayLocked(const Periodic& p) {
  if (p.jitter <= 0) return p.period_ms;
  // The project's one source of randomness (RAND_bytes); a failure just means no jitter.
  uint32_t draw = 0;
  if (!FillRandom(&draw, sizeof(draw)).ok()) return p.period_ms;
  double spread = p.jitter * (2.0 * draw / 4294967295.0 - 1.0);  // in [-jitter, +jitter]
  auto delay = static_cast<int64_t>(static_cast<double>(p.period_ms) * (1.0 + spread));
  return delay < 1 ? 1 : delay;
}

void Scheduler::Every(const std::string& name, int64_t period_ms, double jitter, Task task) {
  auto p = std::make_unique<Periodic>();
  p->name = name;
  p->period_ms = period_ms < 1 ? 1 : period_ms;
  p->jitter = jitter;
  p->task = std::move(task);
  std::lock_guard<std::mutex> lock(mu_);
  p->next_ms = now_ms_() + NextDelayLocked(*p);
  periodic_.push_back(std::move(p));
  timer_cv_.notify_all();
}

void Scheduler::Submit(const std::string& name, Task task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  queue_.push_back(Job{name, std::move(task)});
  work_cv_.notify_one();
}

void Scheduler::EnqueueDueLocked(int64_t now) {
  for (auto& p : periodic_) {
    if (p->next_ms > now) continue;
    p->next_ms = now + NextDelayLocked(*p);
    if (p->running) continue;  // the previous run is still going: skip this one
    p->running = true;
    Periodic* raw = p.get();
    queue_.push_back(Job{p->name, [this, raw] {
                           raw->task();
                           std::lock_guard<std::mutex> lock(mu_);
                           raw->running = false;
                         }});
  }
}

void Scheduler::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return;
  started_ = true;
  threads_.emplace_back([this] { TimerLoop(); });
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
    timer_cv_.notify_all();
    work_cv_.notify_all();
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Scheduler::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    int64_t now = now_ms_();
    EnqueueDueLocked(now);
    if (!queue_.empty()) work_cv_.notify_all();
    int64_t next = now + 1000;
    for (const auto& p : periodic_) next = std::min(next, p->next_ms);
    // Waking at least once a second keeps an injected clock that jumps from being missed.
    timer_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, next - now)));
  }
}

void Scheduler::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job.run();
    lock.lock();
  }
}

int Scheduler::RunDueForTest() {
  std::deque<Job> jobs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    EnqueueDueLocked(now_ms_());
    jobs.swap(queue_);
  }
  int ran = 0;
  for (auto& job : jobs) {
    job.run();
    ++ran;
  }
  return ran;
}

}  // namespace keyward
