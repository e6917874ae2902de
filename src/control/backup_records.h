#pragma once
// The `backups` table: one row per backup, in the metadata database (its own SQLite connection,
// so backups stay out of MetadataStore's interface until a PostgreSQL store needs them too).
// States: running → completed | failed, each change a compare-and-set (UPDATE … WHERE
// state = 'running'), so a restart's "interrupted → failed" and a finishing job cannot both win.
// Table `backup_file_objects`: which backup holds which shared file object (incremental
// backups, backup/backup_format.h); an object no row names any more is deleted.
// Thread-safe.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backup/cluster_backup.h"
#include "control/metadata_store.h"
#include "control/sqlite_db.h"

namespace keyward {

struct BackupRecord {
  std::string id;
  std::string cluster_id;
  std::string project_id;
  std::string state;         // running | completed | failed
  uint64_t bytes = 0;        // plaintext bytes done (running) or backed up (completed)
  uint64_t bytes_total = 0;  // running: the estimate progress is measured against
  uint64_t files = 0;
  std::string key_record_id;  // the project's encryption-key record
  std::string key_id;         // the KMS key that wrapped the backup key
  std::string key_version;
  std::string destination;  // e.g. local:/data/backups
  int64_t created_at = 0;
  int64_t completed_at = 0;
  std::string error;
  // The dual-region copy (table backup_copies; filled in by the control plane, not by
  // ListForCluster/Get): "" when none was due, copying | completed | failed | refused.
  std::string copy_state;
  std::string copy_destination;
  std::string copy_error;
};

class BackupRecords : public BackupFileRefs {
 public:
  static absl::StatusOr<std::unique_ptr<BackupRecords>> Open(const std::string& sqlite_path);

  // Inserts a running backup unless the cluster has one running: then returns false.
  absl::StatusOr<bool> InsertRunning(const BackupRecord& r);
  absl::StatusOr<std::optional<BackupRecord>> Get(const std::string& id);
  // Newest first.
  absl::StatusOr<std::vector<BackupRecord>> ListForCluster(const std::string& cluster_id,
                                                           Page page);
  absl::Status RecordProgress(const std::string& id, uint64_t done, uint64_t total);
  // running → completed | failed; false when the record was not running any more.
  absl::StatusOr<bool> Finish(const BackupRecord& r);
  // Removes a record that is not running; false when it was running or absent.
  absl::StatusOr<bool> DeleteIfNotRunning(const std::string& id);
  // Start-up: every running backup → failed with `error`; returns their records.
  absl::StatusOr<std::vector<BackupRecord>> FailAllRunning(const std::string& error, int64_t now);

  // BackupFileRefs (each one statement, so atomic with respect to ReleaseFileObjects).
  absl::Status Add(const std::string& backup_id, const std::string& object) override;
  absl::StatusOr<bool> Claim(const std::string& backup_id, const std::string& object) override;
  // Drops every object `backup_id` holds and returns those no other backup holds (to delete:
  // from now on no backup can claim them).
  absl::StatusOr<std::vector<std::string>> ReleaseFileObjects(const std::string& backup_id);
  // Whether any backup (running, completed or failed) holds shared object `object`.
  absl::StatusOr<bool> IsFileObjectHeld(const std::string& object);
  // The shared objects `backup_id` holds (its dual-region copy needs them too).
  absl::StatusOr<std::vector<std::string>> FileObjectsOf(const std::string& backup_id);
  // Dual-region copies, one per backup: sets copy_* of the backup's copy row.
  absl::Status SetCopy(const std::string& backup_id, const std::string& destination,
                       const std::string& state, const std::string& error);
  // Fills b->copy_* from its row (left empty without one).
  absl::Status LoadCopy(BackupRecord* b);
  absl::Status DeleteCopy(const std::string& backup_id);
  // Start-up: every copy still copying → failed with `error`; returns their backup ids and
  // destinations.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> FailAllCopying(
      const std::string& error);

 private:
  explicit BackupRecords(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  std::unique_ptr<SqliteDb> db_;
};

// Deletes a backup's own objects, then the shared file objects no other backup holds. Not the
// record (the caller decides: kept as failed, or deleted).
absl::Status DeleteBackupWithFiles(BackupDestination& dest, BackupRecords& records,
                                   const std::string& backup_id);

}  // namespace keyward
