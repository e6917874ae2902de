#pragma once
// Durability `everysec`: every open cluster that chose it gets its WAL synced at least once a
// second (server/durability.h), so a power loss takes at most about the last second of writes.
//
// One thread of its own, asleep between rounds: not the scheduler's pool, where a KMS call
// hanging in a key check could hold the sync up. A round skips a store whose newest sequence
// number has not moved since its last sync, so idle clusters cost one integer compare.
// Thread-safe (Start/Stop from one owner; SyncOnce from the syncer thread or, stopped, a test).

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "storage/cluster_store.h"

namespace keyward {

class WalSyncer {
 public:
  using StoreList = std::vector<std::pair<std::string, std::shared_ptr<ClusterStore>>>;
  // `stores` lists the clusters to sync (id and open store), asked anew every round.
  explicit WalSyncer(std::function<StoreList()> stores, int64_t period_ms = 1000);
  ~WalSyncer();
  WalSyncer(const WalSyncer&) = delete;
  WalSyncer& operator=(const WalSyncer&) = delete;

  void Start();
  // Ends the thread after a round in progress; idempotent.
  void Stop();
  // One round: syncs every listed store written since its last sync. Returns how many it synced.
  int SyncOnce();

 private:
  struct Synced {
    std::weak_ptr<ClusterStore> store;  // a reopened cluster is a new store: synced anew
    uint64_t sequence = 0;
    bool failing = false;  // the last sync failed (logged once per streak)
  };
  void Loop();

  const std::function<StoreList()> stores_;
  const int64_t period_ms_;
  std::mutex round_mu_;  // one round at a time
  std::map<std::string, Synced> synced_ ABSL_GUARDED_BY(round_mu_);
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // touched only by Start/Stop
};

}  // namespace keyward
