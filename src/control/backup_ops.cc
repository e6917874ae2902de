// ControlPlane's backups: start a backup job, list/get/delete backups, and the start-up recovery
// of backups a restart interrupted (restores are in backup_restore.cc). The data path is
// backup/cluster_backup.h; this file decides, authorises, records and audits.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "backup/cluster_backup.h"
#include "control/control_plane.h"
#include "control/control_plane_internal.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kCheckpointPrefix[] = "backup-checkpoint-";
constexpr int64_t kProgressEveryMs = 250;

absl::Status BackupsOff() {
  return absl::FailedPreconditionError(
      "backups are not configured on this server; start it with --backup-dir");
}

}  // namespace

namespace control_internal {

void RemoveQuietly(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

}  // namespace control_internal

using control_internal::kRestoreStagingPrefix;
using control_internal::RemoveQuietly;

void ControlPlane::SetBackups(BackupRecords* records, BackupDestination* destination) {
  backups_ = records;
  backup_destination_ = destination;
  AddBackupDestination(destination);
}

void ControlPlane::AddBackupDestination(BackupDestination* destination) {
  if (destination && std::find(backup_destinations_.begin(), backup_destinations_.end(),
                               destination) == backup_destinations_.end()) {
    backup_destinations_.push_back(destination);
  }
}

absl::StatusOr<BackupDestination*> ControlPlane::BackupDestinationFor(const BackupRecord& b) {
  for (BackupDestination* d : backup_destinations_) {
    if (d->Describe() == b.destination) return d;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("backup ", b.id, " is in ", b.destination,
                   ", which this server is not configured for: start it with the --backup-dir or "
                   "--backup-azure-* flags that name that destination"));
}

absl::Status ControlPlane::RecoverBackups(const std::vector<Cluster>& clusters) {
  // Restore staging directories: a restore the restart interrupted created no cluster.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(runtime_.data_dir() + "/clusters", ec)) {
    if (e.path().filename().string().rfind(kRestoreStagingPrefix, 0) == 0) {
      RemoveQuietly(e.path().string());
    }
  }
  for (const Cluster& c : clusters) {
    for (const auto& e : fs::directory_iterator(runtime_.ClusterDir(c.id), ec)) {
      if (e.path().filename().string().rfind(kCheckpointPrefix, 0) == 0) {
        RemoveQuietly(e.path().string());
      }
    }
    // A mariadb backup's work dir (mariadb-backup's --target-dir, mariadb_backup.cc).
    for (const auto& e : fs::directory_iterator(runtime_.ClusterDir(c.id) + "/mariadb/run", ec)) {
      if (e.path().filename().string().rfind("backup-", 0) == 0) RemoveQuietly(e.path().string());
    }
  }
  if (!backups_) return absl::OkStatus();
  RecoverBackupCopies();
  ASSIGN_OR_RETURN(std::vector<BackupRecord> failed,
                   backups_->FailAllRunning(
                       "interrupted by a server restart before it completed; its objects were "
                       "removed: create a new backup",
                       Now()));
  for (const BackupRecord& b : failed) {
    if (auto dest = BackupDestinationFor(b); dest.ok()) {
      DeleteBackupWithFiles(**dest, *backups_, b.id).IgnoreError();
    }
    Audit(nullptr, b.project_id, "backup.recover", b.id, nullptr, absl::OkStatus(),
          "running -> failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<BackupRecord> ControlPlane::NewRunningBackup(const Cluster& c,
                                                            const std::string& key_record_id,
                                                            const std::string& kms_key_id) {
  BackupRecord r;
  ASSIGN_OR_RETURN(std::string hex, RandomHex(8));
  r.id = absl::StrCat("b-", hex);
  r.cluster_id = c.id;
  r.project_id = c.project_id;
  r.state = "running";
  r.key_record_id = key_record_id;
  r.key_id = kms_key_id;
  r.destination = backup_destination_->Describe();
  r.created_at = Now();
  return r;
}

absl::StatusOr<BackupRecord> ControlPlane::CreateBackup(const User& actor,
                                                        const std::string& cluster_id) {
  if (!backups_ || !backup_destination_) return BackupsOff();
  ASSIGN_OR_RETURN(Cluster c,
                   LoadCluster(actor, cluster_id, Need::kMember, nullptr, "backup.create"));
  return StartBackup(&actor, c);
}

absl::StatusOr<BackupRecord> ControlPlane::StartBackup(const User* actor, const Cluster& c) {
  const std::string& cluster_id = c.id;
  ASSIGN_OR_RETURN(std::optional<EncryptionKey> key, metadata_.GetKey(c.encryption_key_id));
  if (c.engine == "mariadb" && key) return StartMariadbBackup(actor, c, *key);
  auto h = runtime_.Get(cluster_id);
  if (!h || !key) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot back up cluster ", cluster_id, ": it is ", c.state,
                     " (only an available cluster can be backed up); resume it first"));
  }
  ASSIGN_OR_RETURN(BackupRecord r, NewRunningBackup(c, key->id, h->provider->key_id()));
  ASSIGN_OR_RETURN(bool inserted, backups_->InsertRunning(r));
  if (!inserted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cluster ", cluster_id, " has a backup running already; wait for it (keyward backup list ",
        cluster_id, ")"));
  }
  Audit(actor, c.project_id, "backup.create", r.id, &*key, absl::OkStatus(),
        absl::StrCat(actor ? "started" : "started by the backup policy", ", cluster ", c.id));
  // Like re-encryption, the job holds the store only while it works: a close (pause, key loss,
  // shutdown) makes it stop, and the close is what releases the store and wipes its keys.
  std::weak_ptr<ClusterStore> weak_store = h->store;
  std::shared_ptr<MasterKeyProvider> provider = h->provider;
  h.reset();
  auto job = [this, r, k = *key, weak_store, provider] { RunBackup(r, k, weak_store, provider); };
  if (background_) {
    background_(job);
  } else {
    std::thread(job).detach();
  }
  return r;
}

void ControlPlane::RunBackup(BackupRecord r, EncryptionKey key, std::weak_ptr<ClusterStore> weak,
                             std::shared_ptr<MasterKeyProvider> provider) {
  absl::StatusOr<BackupSummary> summary = absl::CancelledError(absl::StrCat(
      "cluster ", r.cluster_id, " was closed before the backup began; back it up once available"));
  if (std::shared_ptr<ClusterStore> store = weak.lock()) {
    BackupJob job;
    job.backup_id = r.id;
    job.cluster_id = r.cluster_id;
    job.project_id = r.project_id;
    job.key_record_id = r.key_record_id;
    job.created_at = r.created_at;
    job.checkpoint_dir =
        absl::StrCat(runtime_.ClusterDir(r.cluster_id), "/", kCheckpointPrefix, r.id);
    // Incremental: unchanged SSTs of the cluster's latest completed backup in this destination
    // are reused (claimed in backup_file_objects), not uploaded again.
    job.refs = backups_;
    if (auto listed = backups_->ListForCluster(r.cluster_id, {0, 100}); listed.ok()) {
      for (const BackupRecord& b : *listed) {
        if (b.state == "completed" && b.destination == r.destination) {
          job.base_backup_id = b.id;
          break;
        }
      }
    }
    auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
    auto report = [&](uint64_t done, uint64_t total) {
      auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(kProgressEveryMs) && done < total) return;
      last = now;
      backups_->RecordProgress(r.id, done, total).IgnoreError();
    };
    // The destination the record names (the primary when the backup started).
    auto dest = BackupDestinationFor(r);
    summary = dest.ok() ? BackUpCluster(*store, *provider, **dest, job, report) : dest.status();
  }
  FinishBackupJob(r, key, summary);
}

void ControlPlane::FinishBackupJob(const BackupRecord& r, const EncryptionKey& key,
                                   const absl::StatusOr<BackupSummary>& summary) {
  BackupRecord end = r;
  end.completed_at = Now();
  if (summary.ok()) {
    end.state = "completed";
    end.bytes = end.bytes_total = summary->bytes;
    end.files = summary->files;
    end.key_id = summary->key_id;
    end.key_version = summary->key_version;
  } else {
    end.state = "failed";
    end.error = std::string(summary.status().message());
    // Its own objects are gone (BackUpCluster); its holds on shared objects go too.
    if (auto dest = BackupDestinationFor(r); dest.ok()) {
      DeleteBackupWithFiles(**dest, *backups_, r.id).IgnoreError();
    }
  }
  const bool copy = summary.ok() && StartDualRegionCopy(end);
  auto finished = backups_->Finish(end);
  if (finished.ok() && *finished && copy) CopyBackupIfDualRegion(end);
  if (copy && !(finished.ok() && *finished)) backups_->DeleteCopy(end.id).IgnoreError();
  if (finished.ok() && !*finished && summary.ok()) {
    // A restart's recovery got there first (it cannot, in one process; belt and braces): the
    // record says failed, so the objects must not outlive it looking complete.
    if (auto dest = BackupDestinationFor(r); dest.ok()) {
      DeleteBackupWithFiles(**dest, *backups_, r.id).IgnoreError();
    }
  }
  Audit(nullptr, r.project_id, "backup.create", r.id, &key, summary.status(),
        absl::StrCat("finished, cluster ", r.cluster_id), end.key_version);
}

absl::Status ControlPlane::DeleteObjectsOf(const BackupRecord& b) {
  auto dest = BackupDestinationFor(b);
  // A failed backup's objects were removed when it failed: its record can go without them.
  if (!dest.ok()) return b.state == "failed" ? absl::OkStatus() : dest.status();
  BackupRecord with_copy = b;
  RETURN_IF_ERROR(backups_->LoadCopy(&with_copy));
  RETURN_IF_ERROR(DeleteBackupCopy(b));
  // Its own objects, then the shared SST objects no other backup holds (incremental backups),
  // in the primary and in the secondary its copy went to. A shared object another backup still
  // holds stays in both (in the secondary even when that backup was never copied).
  RETURN_IF_ERROR(DeleteBackupObjects(**dest, b.id));
  ASSIGN_OR_RETURN(std::vector<std::string> orphans, backups_->ReleaseFileObjects(b.id));
  absl::Status st = DeleteBackupFileObjects(**dest, orphans);
  if (!with_copy.copy_state.empty() && backup_secondary_ &&
      backup_secondary_->Describe() == with_copy.copy_destination) {
    DeleteBackupFileObjects(*backup_secondary_, orphans).IgnoreError();
  }
  return st;
}

absl::StatusOr<BackupRecord> ControlPlane::LoadBackup(const User& actor, const std::string& id,
                                                      Need need, std::string_view action) {
  if (!backups_ || !backup_destination_) return BackupsOff();
  ASSIGN_OR_RETURN(std::optional<BackupRecord> b, backups_->Get(id));
  if (!b) return absl::NotFoundError(absl::StrCat("backup '", id, "' does not exist"));
  RETURN_IF_ERROR(backups_->LoadCopy(&*b));
  auto p = Authorize(actor, b->project_id, need, action, id);
  if (!p.ok()) {
    if (absl::IsNotFound(p.status())) {
      return absl::NotFoundError(absl::StrCat("backup '", id, "' does not exist"));
    }
    return p.status();
  }
  return *b;
}

absl::StatusOr<std::vector<BackupRecord>> ControlPlane::ListBackups(const User& actor,
                                                                    const std::string& cluster_id,
                                                                    Page page) {
  if (!backups_ || !backup_destination_) return BackupsOff();
  RETURN_IF_ERROR(LoadCluster(actor, cluster_id, Need::kView, nullptr).status());
  ASSIGN_OR_RETURN(std::vector<BackupRecord> list, backups_->ListForCluster(cluster_id, page));
  for (BackupRecord& b : list) RETURN_IF_ERROR(backups_->LoadCopy(&b));
  return list;
}

absl::StatusOr<BackupRecord> ControlPlane::GetBackup(const User& actor, const std::string& id) {
  return LoadBackup(actor, id, Need::kView, {});
}

absl::StatusOr<BackupRecord> ControlPlane::DeleteBackup(const User& actor, const std::string& id) {
  ASSIGN_OR_RETURN(BackupRecord b, LoadBackup(actor, id, Need::kOwner, "backup.delete"));
  if (b.state == "running") {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", id, " is still running; delete it once it has finished"));
  }
  absl::Status st = DeleteObjectsOf(b);
  if (st.ok()) {
    auto deleted = backups_->DeleteIfNotRunning(id);
    st = deleted.status();
  }
  std::optional<EncryptionKey> key;
  if (auto k = metadata_.GetKey(b.key_record_id); k.ok()) key = *k;
  Audit(&actor, b.project_id, "backup.delete", id, key ? &*key : nullptr, st, "", b.key_version);
  RETURN_IF_ERROR(st);
  return b;
}

absl::StatusOr<int> ControlPlane::CountClusterBackups(const std::string& cluster_id) {
  if (!backups_ || !backup_destination_) return 0;
  ASSIGN_OR_RETURN(std::vector<BackupRecord> list,
                   backups_->ListForCluster(cluster_id, {0, 1 << 30}));
  // The ones that can be restored: a failed backup's record stays, its objects are gone.
  return static_cast<int>(std::count_if(list.begin(), list.end(),
                                        [](const auto& b) { return b.state == "completed"; }));
}

absl::StatusOr<int> ControlPlane::DeleteClusterBackups(const User& actor, const Cluster& c) {
  if (!backups_ || !backup_destination_) return 0;
  ASSIGN_OR_RETURN(std::vector<BackupRecord> list, backups_->ListForCluster(c.id, {0, 1 << 30}));
  for (const BackupRecord& b : list) {
    if (b.state == "running") {
      return absl::FailedPreconditionError(absl::StrCat(
          "cluster ", c.id, " has backup ", b.id,
          " running; nothing was deleted: wait for it to finish, then delete the cluster again"));
    }
  }
  int deleted = 0;
  for (const BackupRecord& b : list) {
    absl::Status st = DeleteObjectsOf(b);
    if (st.ok()) st = backups_->DeleteIfNotRunning(b.id).status();
    std::optional<EncryptionKey> key;
    if (auto k = metadata_.GetKey(b.key_record_id); k.ok()) key = *k;
    Audit(&actor, b.project_id, "backup.delete", b.id, key ? &*key : nullptr, st,
          absl::StrCat("with cluster ", c.id), b.key_version);
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat("cannot delete backup ", b.id, " of cluster ",
                                                  c.id, " (", deleted,
                                                  " deleted before it); the cluster was not "
                                                  "deleted: ",
                                                  st.message()));
    }
    ++deleted;
  }
  return deleted;
}

std::string ControlPlane::BackupsAfterDelete(const Cluster& c, int kept, int deleted) {
  if (!backups_ || !backup_destination_) return "";
  if (deleted > 0) {
    return deleted == 1 ? std::string("its 1 backup was deleted with it")
                        : absl::StrCat("its ", deleted, " backups were deleted with it");
  }
  if (kept == 0) return "it had no backups";
  json policy = json::parse(c.backup_policy_json, nullptr, false);
  int days = policy.is_object() ? policy.value("retention_days", 0) : 0;
  std::string until =
      days > 0 ? absl::StrCat("until their retention ends (", days, " days after each was taken)")
               : std::string("until you delete them (no backup policy, so no retention)");
  return absl::StrCat("its ", kept, kept == 1 ? " backup is" : " backups are", " kept ", until,
                      ", encrypted under the project's key: readable only through that key, "
                      "while it exists; delete them now with keyward backup delete, or delete "
                      "a cluster with --with-backups");
}

}  // namespace keyward
