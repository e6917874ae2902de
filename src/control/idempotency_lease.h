#pragma once
// Keeps an Idempotency-Key claim (MetadataStore::ClaimIdempotent) alive while its request runs.
//
// A claim still "running" after the store's stale time (600 s for the REST API) is taken over by
// the next request with the key: that is how a key held by a server that died is freed. A live
// request that simply runs longer (a restore of a large backup, a KMS that answers slowly) must
// not be taken over and run twice, so while it runs this lease moves the claim's time forward
// every `interval` (a tenth of the stale time in the API). Only a claim whose server stopped
// refreshing it goes stale.
//
// Refreshes name the claim's generation: once the claim was taken over (its refreshes failed for
// longer than the stale time), this lease's refreshes fail and it stops; the request's finish
// (MetadataStore::FinishIdempotent with the same generation) fails too, so a stale holder never
// stores its answer over the new holder's claim.
//
// Thread-safe: one background thread per lease, stopped and joined by the destructor (at once:
// it waits on a condition variable, not a sleep). Refresh failures are logged and retried at the
// next interval; the request itself carries on.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "control/metadata_store.h"

namespace keyward {

class IdempotencyLease {
 public:
  // `generation`: the claim's (IdempotencyClaim::generation). `now_s`: the clock the claim was
  // made with (Unix seconds; injectable for tests).
  IdempotencyLease(MetadataStore& store, std::string user_id, std::string key, std::string route,
                   int64_t generation, std::function<int64_t()> now_s,
                   std::chrono::milliseconds interval);
  ~IdempotencyLease();
  IdempotencyLease(const IdempotencyLease&) = delete;
  IdempotencyLease& operator=(const IdempotencyLease&) = delete;

  // Refreshes so far (for tests and logs).
  int64_t refreshes() const;
  // Whether the claim stopped being this lease's (finished, released or taken over): refreshing
  // then stops, since it would only fail.
  bool lost() const;

 private:
  void Run();

  MetadataStore& store_;
  const std::string user_id_, key_, route_;
  const int64_t generation_;
  const std::function<int64_t()> now_s_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t refreshes_ ABSL_GUARDED_BY(mu_) = 0;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace keyward
