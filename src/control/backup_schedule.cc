// ControlPlane's backup policies at work: scheduled backups and retention expiry. The scheduler
// calls RunBackupSchedule() every minute (serve.cc); tests call it with a test clock. The policy
// itself is stored by SetBackupPolicy (control_plane.cc) as JSON on the cluster record.

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "backup/cluster_backup.h"
#include "control/control_plane.h"
#include "util/log.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;
// A scheduled backup that failed is tried again at most this often within its period, so a
// cluster that cannot be backed up does not start one every minute.
constexpr int64_t kRetryAfterFailure = kHour;
constexpr int64_t kSweepEvery = kHour;

struct Policy {
  std::string schedule;
  int retention_days = 0;
};

std::optional<Policy> ParsePolicy(const std::string& text) {
  if (text.empty()) return std::nullopt;
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Policy p;
  p.schedule = j.value("schedule", "");
  p.retention_days = j.value("retention_days", 0);
  if (p.schedule.empty() || p.retention_days < 1) return std::nullopt;
  return p;
}

// The start (seconds, UTC) of the schedule period `now` is in: one scheduled backup per period.
std::optional<int64_t> PeriodStart(const std::string& schedule, int64_t now) {
  if (schedule == "hourly") return now - now % kHour;
  if (schedule == "daily") return now - now % kDay;
  // Weeks counted from the epoch: the boundary falls on a Thursday 00:00 UTC.
  if (schedule == "weekly") return now - now % (7 * kDay);
  if (schedule.size() == 5 && schedule[2] == ':') {  // HH:MM UTC, validated when stored
    int64_t at = std::stoi(schedule.substr(0, 2)) * kHour + std::stoi(schedule.substr(3, 2)) * 60;
    int64_t today = now - now % kDay + at;
    return today <= now ? today : today - kDay;
  }
  return std::nullopt;
}

}  // namespace

ControlPlane::BackupScheduleRun ControlPlane::RunBackupSchedule() {
  BackupScheduleRun run;
  if (!backups_ || !backup_destination_) return run;
  auto clusters = metadata_.ListClusters("", {0, 1 << 30});
  if (!clusters.ok()) {
    LogWarn("backup.schedule_failed",
            absl::StrCat("backup schedule: ", clusters.status().message()));
    return run;
  }
  const int64_t now = Now();
  for (const Cluster& c : *clusters) {
    std::optional<Policy> policy = ParsePolicy(c.backup_policy_json);
    if (!policy) continue;
    auto listed = backups_->ListForCluster(c.id, {0, 1 << 30});
    if (!listed.ok()) continue;
    // Retention first, deleted clusters included: their backups are kept until it ends.
    const int64_t cutoff = now - int64_t{policy->retention_days} * kDay;
    for (const BackupRecord& b : *listed) {
      if (b.state == "running" || b.created_at > cutoff) continue;
      absl::Status st = DeleteObjectsOf(b);
      if (st.ok()) st = backups_->DeleteIfNotRunning(b.id).status();
      std::optional<EncryptionKey> key;
      if (auto k = metadata_.GetKey(b.key_record_id); k.ok()) key = *k;
      Audit(nullptr, b.project_id, "backup.expire", b.id, key ? &*key : nullptr, st,
            absl::StrCat("older than the ", policy->retention_days,
                         " days the backup policy keeps, cluster ", c.id),
            b.key_version);
      if (st.ok()) ++run.expired;
    }
    // Only an available, open cluster gets its scheduled backup; a paused or inaccessible one
    // is skipped and gets the period's backup when it is available again.
    if (c.state != "available") continue;
    std::optional<int64_t> period = PeriodStart(policy->schedule, now);
    if (!period) continue;
    bool due = true;
    for (const BackupRecord& b : *listed) {
      if (b.created_at < *period) continue;
      if (b.state != "failed" || b.created_at > now - kRetryAfterFailure) due = false;
    }
    if (!due) continue;
    auto started = StartBackup(nullptr, c);
    if (started.ok()) {
      ++run.started;
    } else if (!absl::IsFailedPrecondition(started.status())) {
      // Not open or one running already is the next tick's business; anything else is news.
      LogWarn("backup.scheduled_start_failed",
              absl::StrCat("scheduled backup of cluster ", c.id, ": ", started.status().message()),
              {{"cluster_id", c.id}});
    }
  }
  // Leaked shared objects, at most once an hour: a sweep lists every shared object.
  bool sweep = false;
  {
    std::lock_guard<std::mutex> lock(sweep_mu_);
    if (last_sweep_ == 0 || now - last_sweep_ >= kSweepEvery) {
      last_sweep_ = now;
      sweep = true;
    }
  }
  if (sweep) run.swept = SweepLeakedBackupObjects().deleted;
  return run;
}

}  // namespace keyward
