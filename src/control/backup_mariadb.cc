// ControlPlane's backups of mariadb clusters: the same records, states, progress, audit,
// destinations, schedules and dual-region rule as kv backups (backup_ops.cc), with
// mariadb-backup's stream as the data path (mariadb/mariadb_backup.h). The backup's manifest
// carries the cluster's data keys, sealed, so a backup restores after its cluster is deleted:
// RestoreMariadbStaging builds the new cluster's dictionary from them.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "control/control_plane.h"
#include "crypto/random.h"
#include "mariadb/mariadb_backup.h"
#include "mariadb/mariadb_supervisor.h"
#include "storage/key_dictionary.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

constexpr int64_t kMariadbProgressEveryMs = 250;

// The stream's size is only known at its end: the data dir's size (what mariadb-backup copies,
// roughly) stands in for it, so progress moves and stays below 1 until the backup completes.
uint64_t EstimatedStreamBytes(const std::string& data_dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(data_dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      uint64_t size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

}  // namespace

absl::StatusOr<BackupRecord> ControlPlane::StartMariadbBackup(const User* actor, const Cluster& c,
                                                              const EncryptionKey& key) {
  std::shared_ptr<MariadbSupervisor> supervisor = runtime_.Mariadb(c.id);
  if (!supervisor || !runtime_.ServingError(c.id).ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot back up cluster ", c.id, ": it is ", c.state,
                     " (only an available cluster can be backed up); resume it first"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<MasterKeyProvider> provider, kms_.ProviderFor(key));
  ASSIGN_OR_RETURN(BackupRecord r, NewRunningBackup(c, key.id, provider->key_id()));

  MariadbBackupJob job;
  job.backup_id = r.id;
  job.cluster_id = c.id;
  job.project_id = c.project_id;
  job.key_record_id = key.id;
  job.created_at = r.created_at;
  job.instance = supervisor->instance_spec();
  // The backup key is wrapped now, before any record exists: a key the KMS refuses (disabled,
  // access revoked) refuses the backup here, naming the key, instead of a job failing later.
  absl::StatusOr<MariadbBackupStart> start = keyward::StartMariadbBackup(job, *provider);
  if (!start.ok()) {
    absl::Status refused(
        absl::IsUnavailable(start.status()) ? absl::StatusCode::kUnavailable
                                            : absl::StatusCode::kFailedPrecondition,
        absl::StrCat("cannot back up cluster ", c.id, ": its encryption key ", key.id, " (",
                     key.provider, " key ", key.key_name,
                     ") did not wrap the backup's key: ", start.status().message(),
                     "; make the key usable (enable it, restore access), then back up again"));
    if (actor == nullptr) {
      // The backup policy's: a failed record (audited), as when a kv backup's key fails in its
      // job, so the schedule tries again an hour later rather than at every tick.
      ASSIGN_OR_RETURN(bool inserted, backups_->InsertRunning(r));
      if (inserted) FinishBackupJob(r, key, refused);
      return r;
    }
    Audit(actor, c.project_id, "backup.create", r.id, &key, refused,
          absl::StrCat("refused, cluster ", c.id));
    return refused;
  }
  ASSIGN_OR_RETURN(bool inserted, backups_->InsertRunning(r));
  if (!inserted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster ", c.id, " has a backup running already; wait for it (keyward backup list ", c.id,
        ")"));
  }
  Audit(actor, c.project_id, "backup.create", r.id, &key, absl::OkStatus(),
        absl::StrCat(actor ? "started" : "started by the backup policy", ", cluster ", c.id));
  // The job holds the supervisor only while it works; a close (pause, key loss, delete) stops
  // mariadbd, which ends mariadb-backup and so the job.
  std::weak_ptr<MariadbSupervisor> weak = supervisor;
  supervisor.reset();
  auto started = std::make_shared<MariadbBackupStart>(*std::move(start));
  auto run = [this, r, key, weak, started, job]() mutable {
    absl::StatusOr<BackupSummary> summary = absl::CancelledError(
        absl::StrCat("cluster ", r.cluster_id,
                     " was closed before the backup began; back it up once available"));
    if (std::shared_ptr<MariadbSupervisor> s = weak.lock()) {
      job.dictionary = &s->dictionary();
      const uint64_t estimate = EstimatedStreamBytes(job.instance.data_dir);
      auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
      auto report = [&](uint64_t done, uint64_t) {
        auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(kMariadbProgressEveryMs)) return;
        last = now;
        backups_->RecordProgress(r.id, done, std::max(estimate, done + done / 10 + 1))
            .IgnoreError();
      };
      auto dest = BackupDestinationFor(r);
      summary = dest.ok()
                    ? BackUpMariadb(job, std::move(*started), s->key_service(), **dest, report)
                    : dest.status();
    }
    FinishBackupJob(r, key, summary);
  };
  if (background_) {
    background_(run);
  } else {
    std::thread(run).detach();
  }
  return r;
}

absl::StatusOr<BackupManifest> ControlPlane::RestoreMariadbStaging(
    BackupDestination& from, MasterKeyProvider& provider, const std::string& backup_id,
    const std::string& cluster_id, const std::string& staging, const std::string& password) {
  MariadbNewClusterRestore job;
  job.restore.backup_id = backup_id;
  job.restore.target = runtime_.MariadbSpecFor(staging);
  job.cluster_id = cluster_id;
  job.dictionary_path = absl::StrCat(staging, "/", KeyDictionary::kFileName);
  job.data_root = runtime_.data_dir();
  job.admin_password = SecretBytes::FromView(password);
  absl::StatusOr<BackupManifest> out =
      RestoreMariadbBackupAsNewCluster(job, provider, from, nullptr);
  if (!out.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(staging, ec);  // the run and tmp dirs too
  }
  return out;
}

}  // namespace keyward
