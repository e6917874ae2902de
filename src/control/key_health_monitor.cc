#include "control/key_health_monitor.h"

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "util/log.h"

namespace keyward {
namespace {

// A KMS answer that says the key cannot be used, as opposed to "try again later".
bool IsDefinitive(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

KeyCheckOutcome Lost(std::string reason, std::string version = "") {
  return {KeyCheckOutcome::Result::kLost, std::move(reason), std::move(version)};
}

KeyCheckOutcome FromError(const absl::Status& st) {
  if (IsDefinitive(st)) return Lost(std::string(st.message()));
  return {KeyCheckOutcome::Result::kTransient, std::string(st.message()), ""};
}

// The states in which a cluster's data is open under its key (and must be cut on loss).
// Open and serving (degraded: read-only after a storage error, still holding the key).
bool IsOpenState(const std::string& state) { return state == "available" || state == "degraded"; }

}  // namespace

KeyHealthMonitor::KeyHealthMonitor(MetadataStore& metadata, KmsFactory& kms, ControlPlane& control,
                                   Scheduler& scheduler, KeyMonitorOptions options)
    : metadata_(metadata), kms_(kms), control_(control), scheduler_(scheduler), options_(options) {}

KeyCheckOutcome KeyHealthMonitor::CheckKey(const EncryptionKey& key, bool round_trip) {
  auto provider = kms_.ProviderFor(key);
  if (!provider.ok()) return FromError(provider.status());
  auto desc = (*provider)->Describe();
  if (!desc.ok()) return FromError(desc.status());
  const int64_t now_s = scheduler_.NowMs() / 1000;
  const std::string version = desc->key_version;
  if (!desc->enabled) return Lost("the key is disabled", version);
  if (desc->expires_at && *desc->expires_at <= now_s) return Lost("the key has expired", version);
  if (desc->not_before && *desc->not_before > now_s) {
    return Lost("the key is not valid yet (not-before is in the future)", version);
  }
  if (!desc->can_wrap) {
    return Lost("the key's permitted operations no longer include wrapKey and unwrapKey", version);
  }
  if (round_trip) {
    auto probe = RandomSecret(32);
    if (!probe.ok()) return {KeyCheckOutcome::Result::kTransient, "no randomness", version};
    std::string context = "keyward-key-check:" + key.id;
    auto wrapped = (*provider)->Wrap(*probe, context);
    if (!wrapped.ok()) return FromError(wrapped.status());
    auto unwrapped = (*provider)->Unwrap(*wrapped, context);
    if (!unwrapped.ok()) return FromError(unwrapped.status());
    if (!unwrapped->Equals(*probe)) return Lost("unwrapKey returned different bytes", version);
  }
  return {KeyCheckOutcome::Result::kOk, "", version};
}

void KeyHealthMonitor::Tick() {
  auto clusters = metadata_.ListClusters("", {0, 1 << 30});
  if (!clusters.ok()) {
    LogWarn("key_monitor.failed", absl::StrCat("key monitor: ", clusters.status().message()));
    return;
  }
  // Keys that govern a cluster now: open ones, and ones the monitor cut (to restore them).
  std::set<std::string> governing;
  for (const Cluster& c : *clusters) {
    if (IsOpenState(c.state) || (c.state == "inaccessible" && c.state_cause == "key")) {
      governing.insert(c.encryption_key_id);
    }
  }
  const int64_t now = scheduler_.NowMs();
  std::vector<std::string> due_ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = keys_.begin(); it != keys_.end();) {
      // Forget keys that govern nothing any more (not while a check of theirs runs).
      it = governing.count(it->first) || it->second.in_flight ? std::next(it) : keys_.erase(it);
    }
    for (const std::string& id : governing) {
      KeyState& s = keys_[id];
      if (s.in_flight || s.next_check_ms > now) continue;
      s.in_flight = true;
      s.started_ms = now;
      due_ids.push_back(id);
    }
  }
  // The key records are read outside the monitor's lock.
  std::vector<EncryptionKey> due;
  for (const std::string& id : due_ids) {
    auto key = metadata_.GetKey(id);
    if (key.ok() && *key) {
      due.push_back(**key);
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      keys_[id].in_flight = false;
    }
  }
  for (const EncryptionKey& key : due) {
    scheduler_.Submit("key-check " + key.id, [this, key] { RunCheck(key); });
  }
}

void KeyHealthMonitor::RunCheck(const EncryptionKey& key) {
  bool round_trip = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    KeyState& s = keys_[key.id];
    round_trip = options_.round_trip_every > 0 && s.checks % options_.round_trip_every == 0;
    ++s.checks;
  }
  KeyCheckOutcome outcome = CheckKey(key, round_trip);
  const int64_t now = scheduler_.NowMs();
  int64_t failing_since = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    KeyState& s = keys_[key.id];
    if (outcome.result == KeyCheckOutcome::Result::kTransient) {
      if (s.failing_since_ms == 0) s.failing_since_ms = now;
      failing_since = s.failing_since_ms;
      // Retry sooner than the interval, backing off: 1 s, 2 s, 4 s … up to the interval.
      int64_t backoff = int64_t{1000} << std::min(s.transient_streak, 16);
      ++s.transient_streak;
      s.next_check_ms = now + std::min(backoff, options_.interval_ms);
    } else {
      s.failing_since_ms = 0;
      s.transient_streak = 0;
      // From the check's start, not its end: a slow KMS must not stretch the period (a check
      // taking a second made a 2 s interval a 3 s one). Up to 10 % early, never late, so the
      // checks of many keys (and servers) do not fall into step and a loss is still seen within
      // one interval.
      const int64_t jitter = options_.interval_ms / 10;
      const int64_t early =
          jitter > 0 ? static_cast<int64_t>(absl::Uniform<uint64_t>(rng_, 0, jitter + 1)) : 0;
      s.next_check_ms = s.started_ms + options_.interval_ms - early;
    }
  }
  Apply(key, outcome, failing_since);
  // Only now: the next check of this key could otherwise start while this one's cut, restore
  // or re-wrap (each a KMS round trip) still runs, and an older "healthy" could land after a
  // newer "lost".
  std::lock_guard<std::mutex> lock(mu_);
  keys_[key.id].in_flight = false;
}

void KeyHealthMonitor::CutAll(const EncryptionKey& key, const std::string& reason) {
  auto clusters = metadata_.ListClusters("", {0, 1 << 30});
  if (!clusters.ok()) return;
  for (const Cluster& c : *clusters) {
    if (c.encryption_key_id != key.id || !IsOpenState(c.state)) continue;
    absl::Status st = control_.CutCluster(c.id, key, reason);
    if (!st.ok()) {
      LogError("key_monitor.cut_failed",
               absl::StrCat("key monitor: cannot cut cluster ", c.id, ": ", st.message()),
               {{"cluster_id", c.id}, {"key_id", key.id}});
    }
  }
}

void KeyHealthMonitor::Apply(const EncryptionKey& key, const KeyCheckOutcome& outcome,
                             int64_t failing_since_ms) {
  const int64_t now = scheduler_.NowMs();
  const int64_t now_s = now / 1000;
  std::string error;
  switch (outcome.result) {
    case KeyCheckOutcome::Result::kOk:
      break;
    case KeyCheckOutcome::Result::kLost:
      error = outcome.reason;
      break;
    case KeyCheckOutcome::Result::kTransient:
      error = absl::StrCat("KMS unreachable or erroring (transient): ", outcome.reason);
      break;
  }
  metadata_.RecordKeyCheck(key.id, now_s, error, outcome.key_version).IgnoreError();
  metadata_.RecordClusterKeyCheck(key.id, now_s, error).IgnoreError();

  if (outcome.result == KeyCheckOutcome::Result::kLost) {
    auto moved = metadata_.TransitionKey(key.id, "active", "failed",
                                         absl::StrCat("key health check: ", outcome.reason), now_s);
    if (moved.ok() && *moved) {
      control_.AuditSystem(key.project_id, "encryption_key.lost", key.id, &key,
                           absl::FailedPreconditionError(outcome.reason), outcome.key_version);
    }
    CutAll(key, outcome.reason);
    return;
  }
  if (outcome.result == KeyCheckOutcome::Result::kTransient) {
    LogWarn("key.check_transient_failure",
            absl::StrCat("key ", key.id, " check failed (transient): ", outcome.reason),
            {{"key_id", key.id}});
    if (failing_since_ms > 0 && now - failing_since_ms >= options_.grace_ms) {
      CutAll(key,
             absl::StrCat("the KMS has not answered usefully for ", (now - failing_since_ms) / 1000,
                          " s (grace ", options_.grace_ms / 1000, " s): ", outcome.reason));
    }
    return;
  }
  // Healthy.
  auto healed = metadata_.TransitionKey(key.id, "failed", "active",
                                        "healthy again: key health check passed", now_s);
  if (healed.ok() && *healed) {
    control_.AuditSystem(key.project_id, "encryption_key.heal", key.id, &key, absl::OkStatus(),
                         outcome.key_version);
  }
  auto clusters = metadata_.ListClusters("", {0, 1 << 30});
  if (!clusters.ok()) return;
  for (const Cluster& c : *clusters) {
    if (c.encryption_key_id != key.id) continue;
    if (c.state == "inaccessible" && c.state_cause == "key" && options_.auto_restore) {
      absl::Status st = control_.RestoreCluster(c.id, key);
      if (!st.ok()) {
        LogWarn("key_monitor.restore_failed",
                absl::StrCat("key monitor: cluster ", c.id, " stays inaccessible: ", st.message()),
                {{"cluster_id", c.id}, {"key_id", key.id}});
      }
    } else if (IsOpenState(c.state) && !outcome.key_version.empty() &&
               c.encryption.key_version != outcome.key_version) {
      absl::Status st = control_.RewrapCluster(c.id, key);
      if (!st.ok()) {
        LogWarn("key_monitor.rewrap_failed",
                absl::StrCat("key monitor: re-wrap of cluster ", c.id, " failed: ", st.message()),
                {{"cluster_id", c.id}, {"key_id", key.id}});
      }
    }
  }
}

}  // namespace keyward
