#include "control/idempotency_lease.h"

#include "util/log.h"

namespace keyward {

IdempotencyLease::IdempotencyLease(MetadataStore& store, std::string user_id, std::string key,
                                   std::string route, int64_t generation,
                                   std::function<int64_t()> now_s,
                                   std::chrono::milliseconds interval)
    : store_(store),
      user_id_(std::move(user_id)),
      key_(std::move(key)),
      route_(std::move(route)),
      generation_(generation),
      now_s_(std::move(now_s)),
      interval_(interval) {
  thread_ = std::thread([this] { Run(); });
}

IdempotencyLease::~IdempotencyLease() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int64_t IdempotencyLease::refreshes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refreshes_;
}

bool IdempotencyLease::lost() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lost_;
}

void IdempotencyLease::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();  // never held across the store's I/O
    absl::Status st = store_.RefreshIdempotent(user_id_, key_, route_, generation_, now_s_());
    if (!st.ok()) {
      LogWarn("http.idempotency_refresh_failed", std::string(st.message()), {{"route", route_}});
    }
    lock.lock();
    if (st.ok()) ++refreshes_;
    if (absl::IsFailedPrecondition(st)) {
      lost_ = true;  // taken over (or finished): later refreshes would fail the same way
      return;
    }
  }
}

}  // namespace keyward
