#include "control/wal_syncer.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "util/log.h"

namespace keyward {

WalSyncer::WalSyncer(std::function<StoreList()> stores, int64_t period_ms)
    : stores_(std::move(stores)), period_ms_(period_ms) {}

WalSyncer::~WalSyncer() { Stop(); }

void WalSyncer::Start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void WalSyncer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WalSyncer::Loop() {
  // Fixed rate: a round starts every period whatever the last one took (a slow disk makes rounds
  // back to back, never further apart than the sync itself).
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    next += std::chrono::milliseconds(period_ms_);
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_until(lock, next, [this] { return stopping_; })) return;
    }
    SyncOnce();
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;
  }
}

int WalSyncer::SyncOnce() {
  StoreList stores = stores_();
  std::lock_guard<std::mutex> lock(round_mu_);
  std::map<std::string, Synced> seen;
  int synced = 0;
  for (auto& [id, store] : stores) {
    Synced s;
    if (auto it = synced_.find(id); it != synced_.end() && it->second.store.lock() == store) {
      s = it->second;
    } else {
      s.store = store;
      s.sequence = 0;
    }
    // Read before the sync: writes landing meanwhile are synced too and merely synced again in
    // the next round, never skipped.
    uint64_t sequence = store->LatestSequenceNumber();
    if (sequence != s.sequence || s.failing) {
      absl::Status st = store->SyncWal();
      if (st.ok()) {
        if (s.failing) {
          LogInfo("cluster.wal_sync_recovered",
                  absl::StrCat("cluster ", id, ": WAL sync works again"), {{"cluster_id", id}});
        }
        s.failing = false;
        s.sequence = sequence;
        ++synced;
      } else if (!s.failing) {
        LogError("cluster.wal_sync_failed",
                 absl::StrCat("cluster ", id,
                              ": WAL sync failed (durability everysec; retried every second): ",
                              st.message()),
                 {{"cluster_id", id}});
        s.failing = true;
      }
    }
    seen[id] = s;
  }
  synced_.swap(seen);  // closed clusters drop out
  return synced;
}

}  // namespace keyward
