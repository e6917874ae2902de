#pragma once
// The key health monitor: the customer's key governs every running cluster, not only its start.
//
// Every key that protects a cluster is checked on a timer — one check per key, shared by all its
// clusters: the key exists, is enabled, is within its not-before/expiry window and allows
// wrap/unwrap; every few checks a wrap/unwrap round trip proves it end to end.
//   - Definitive loss (disabled, deleted, expired, permission removed, vault or key not found):
//     every available cluster under the key is cut within one interval (ControlPlane::CutCluster)
//     and the key record goes `failed` with the reason.
//   - Transient trouble (timeouts, 5xx, 429, unreadable replies, connection refused): clusters
//     keep serving on the keys in memory; checks retry with backoff; after `grace_ms` of
//     continuous failure the clusters are cut too (fail closed).
//   - Recovery: a passing check heals the key record (failed → active), reopens clusters the
//     monitor cut (unless auto_restore is off) and re-wraps clusters whose dictionary key is
//     wrapped under an older version than the key's newest.
//
// Tick() is driven by the Scheduler; each key's check runs as its own job, so a slow KMS does
// not delay other keys. Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "control/control_plane.h"
#include "control/metadata_store.h"
#include "control/scheduler.h"
#include "kms/kms_factory.h"

namespace keyward {

struct KeyMonitorOptions {
  int64_t interval_ms = 30'000;
  int64_t grace_ms = 600'000;
  bool auto_restore = true;
  int round_trip_every = 4;  // a wrap/unwrap round trip every N checks (the first check too)
};

// What one check of a key concluded.
struct KeyCheckOutcome {
  enum class Result { kOk, kLost, kTransient };
  Result result = Result::kOk;
  std::string reason;       // why lost / transient (never key material)
  std::string key_version;  // the newest version, when known
};

class KeyHealthMonitor {
 public:
  KeyHealthMonitor(MetadataStore& metadata, KmsFactory& kms, ControlPlane& control,
                   Scheduler& scheduler, KeyMonitorOptions options);

  // Finds the keys that are due and starts their checks (as scheduler jobs).
  void Tick();
  // Checks one key against its KMS (no side effects on clusters or records).
  KeyCheckOutcome CheckKey(const EncryptionKey& key, bool round_trip);

 private:
  struct KeyState {
    int64_t next_check_ms = 0;
    int64_t failing_since_ms = 0;  // first transient failure of the current streak; 0: none
    int transient_streak = 0;
    int checks = 0;
    bool in_flight = false;
    int64_t started_ms = 0;  // when the check in flight (or the last one) was claimed
  };
  void RunCheck(const EncryptionKey& key);
  void Apply(const EncryptionKey& key, const KeyCheckOutcome& outcome, int64_t failing_since_ms);
  void CutAll(const EncryptionKey& key, const std::string& reason);

  MetadataStore& metadata_;
  KmsFactory& kms_;
  ControlPlane& control_;
  Scheduler& scheduler_;
  const KeyMonitorOptions options_;
  std::mutex mu_;
  std::map<std::string, KeyState> keys_ ABSL_GUARDED_BY(mu_);
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);  // check-time jitter only
};

}  // namespace keyward
