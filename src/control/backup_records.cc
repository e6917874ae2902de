#include "control/backup_records.h"

#include "util/status_macros.h"

namespace keyward {
namespace {

constexpr char kBackupsSchema[] = R"(
CREATE TABLE IF NOT EXISTS backups (
  id TEXT PRIMARY KEY, cluster_id TEXT NOT NULL, project_id TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
  bytes INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER NOT NULL DEFAULT 0,
  files INTEGER NOT NULL DEFAULT 0, key_record_id TEXT NOT NULL, key_id TEXT NOT NULL DEFAULT '',
  key_version TEXT NOT NULL DEFAULT '', destination TEXT NOT NULL,
  created_at INTEGER NOT NULL, completed_at INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS backups_by_cluster ON backups(cluster_id, created_at);
CREATE TABLE IF NOT EXISTS backup_file_objects (
  backup_id TEXT NOT NULL, object TEXT NOT NULL, PRIMARY KEY (backup_id, object));
CREATE INDEX IF NOT EXISTS backup_file_objects_by_object ON backup_file_objects(object);
CREATE TABLE IF NOT EXISTS backup_copies (
  backup_id TEXT PRIMARY KEY, destination TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('copying', 'completed', 'failed', 'refused')),
  error TEXT NOT NULL DEFAULT '');
)";

constexpr char kColumns[] =
    "id, cluster_id, project_id, state, bytes, bytes_total, files, key_record_id, key_id, "
    "key_version, destination, created_at, completed_at, error";

BackupRecord FromRow(const SqlRow& r) {
  BackupRecord b;
  b.id = r.Text(0);
  b.cluster_id = r.Text(1);
  b.project_id = r.Text(2);
  b.state = r.Text(3);
  b.bytes = static_cast<uint64_t>(r.Int(4));
  b.bytes_total = static_cast<uint64_t>(r.Int(5));
  b.files = static_cast<uint64_t>(r.Int(6));
  b.key_record_id = r.Text(7);
  b.key_id = r.Text(8);
  b.key_version = r.Text(9);
  b.destination = r.Text(10);
  b.created_at = r.Int(11);
  b.completed_at = r.Int(12);
  b.error = r.Text(13);
  return b;
}

// Runs one statement and returns how many rows it changed; inside a transaction, which holds
// the connection's lock, so no other thread's statement comes between the two.
absl::StatusOr<int64_t> ExecCount(SqliteDb& db, const std::string& sql,
                                  const std::vector<SqlValue>& params) {
  int64_t changed = 0;
  RETURN_IF_ERROR(db.Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(db.Exec(sql, params));
    changed = db.Changes();
    return absl::OkStatus();
  }));
  return changed;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BackupRecords>> BackupRecords::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  RETURN_IF_ERROR(db->ExecScript(kBackupsSchema));
  return std::unique_ptr<BackupRecords>(new BackupRecords(std::move(db)));
}

absl::StatusOr<bool> BackupRecords::InsertRunning(const BackupRecord& r) {
  ASSIGN_OR_RETURN(
      int64_t changed,
      ExecCount(*db_,
                std::string("INSERT INTO backups (") + kColumns +
                    ") SELECT ?, ?, ?, 'running', 0, 0, 0, ?, ?, ?, ?, ?, 0, '' WHERE NOT EXISTS "
                    "(SELECT 1 FROM backups WHERE cluster_id = ? AND state = 'running')",
                {r.id, r.cluster_id, r.project_id, r.key_record_id, r.key_id, r.key_version,
                 r.destination, r.created_at, r.cluster_id}));
  return changed == 1;
}

absl::StatusOr<std::optional<BackupRecord>> BackupRecords::Get(const std::string& id) {
  std::optional<BackupRecord> out;
  RETURN_IF_ERROR(db_->Query(std::string("SELECT ") + kColumns + " FROM backups WHERE id = ?", {id},
                             [&](const SqlRow& r) { out = FromRow(r); }));
  return out;
}

absl::StatusOr<std::vector<BackupRecord>> BackupRecords::ListForCluster(
    const std::string& cluster_id, Page page) {
  std::vector<BackupRecord> out;
  RETURN_IF_ERROR(db_->Query(std::string("SELECT ") + kColumns +
                                 " FROM backups WHERE cluster_id = ? ORDER BY created_at DESC, "
                                 "id LIMIT ? OFFSET ?",
                             {cluster_id, page.limit, page.offset},
                             [&](const SqlRow& r) { out.push_back(FromRow(r)); }));
  return out;
}

absl::Status BackupRecords::RecordProgress(const std::string& id, uint64_t done, uint64_t total) {
  return db_->Exec(
      "UPDATE backups SET bytes = ?, bytes_total = ? WHERE id = ? AND state = 'running'",
      {static_cast<int64_t>(done), static_cast<int64_t>(total), id});
}

absl::StatusOr<bool> BackupRecords::Finish(const BackupRecord& r) {
  ASSIGN_OR_RETURN(
      int64_t changed,
      ExecCount(
          *db_,
          "UPDATE backups SET state = ?, bytes = ?, bytes_total = ?, files = ?, key_id = ?, "
          "key_version = ?, completed_at = ?, error = ? WHERE id = ? AND state = 'running'",
          {r.state, static_cast<int64_t>(r.bytes), static_cast<int64_t>(r.bytes_total),
           static_cast<int64_t>(r.files), r.key_id, r.key_version, r.completed_at, r.error, r.id}));
  return changed == 1;
}

absl::StatusOr<bool> BackupRecords::DeleteIfNotRunning(const std::string& id) {
  ASSIGN_OR_RETURN(
      int64_t changed,
      ExecCount(*db_, "DELETE FROM backups WHERE id = ? AND state <> 'running'", {id}));
  return changed == 1;
}

absl::StatusOr<std::vector<BackupRecord>> BackupRecords::FailAllRunning(const std::string& error,
                                                                        int64_t now) {
  std::vector<BackupRecord> failed;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(
        db_->Query(std::string("SELECT ") + kColumns + " FROM backups WHERE state = 'running'", {},
                   [&](const SqlRow& r) { failed.push_back(FromRow(r)); }));
    return db_->Exec(
        "UPDATE backups SET state = 'failed', error = ?, completed_at = ? WHERE state = 'running'",
        {error, now});
  }));
  return failed;
}

absl::Status BackupRecords::Add(const std::string& backup_id, const std::string& object) {
  return db_->Exec("INSERT OR IGNORE INTO backup_file_objects (backup_id, object) VALUES (?, ?)",
                   {backup_id, object});
}

absl::StatusOr<bool> BackupRecords::Claim(const std::string& backup_id, const std::string& object) {
  ASSIGN_OR_RETURN(int64_t changed,
                   ExecCount(*db_,
                             "INSERT OR IGNORE INTO backup_file_objects (backup_id, object) "
                             "SELECT ?, ? WHERE EXISTS (SELECT 1 FROM backup_file_objects "
                             "WHERE object = ? AND backup_id <> ?)",
                             {backup_id, object, object, backup_id}));
  return changed == 1;
}

absl::StatusOr<std::vector<std::string>> BackupRecords::ReleaseFileObjects(
    const std::string& backup_id) {
  std::vector<std::string> orphans;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(db_->Query(
        "SELECT object FROM backup_file_objects AS mine WHERE backup_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM backup_file_objects AS other WHERE other.object = mine.object AND "
        "other.backup_id <> mine.backup_id) ORDER BY object",
        {backup_id}, [&](const SqlRow& r) { orphans.push_back(r.Text(0)); }));
    return db_->Exec("DELETE FROM backup_file_objects WHERE backup_id = ?", {backup_id});
  }));
  return orphans;
}

absl::StatusOr<bool> BackupRecords::IsFileObjectHeld(const std::string& object) {
  bool held = false;
  RETURN_IF_ERROR(db_->Query("SELECT 1 FROM backup_file_objects WHERE object = ? LIMIT 1", {object},
                             [&](const SqlRow&) { held = true; }));
  return held;
}

absl::StatusOr<std::vector<std::string>> BackupRecords::FileObjectsOf(
    const std::string& backup_id) {
  std::vector<std::string> out;
  RETURN_IF_ERROR(
      db_->Query("SELECT object FROM backup_file_objects WHERE backup_id = ? ORDER BY object",
                 {backup_id}, [&](const SqlRow& r) { out.push_back(r.Text(0)); }));
  return out;
}

absl::Status DeleteBackupWithFiles(BackupDestination& dest, BackupRecords& records,
                                   const std::string& backup_id) {
  RETURN_IF_ERROR(DeleteBackupObjects(dest, backup_id));
  ASSIGN_OR_RETURN(std::vector<std::string> orphans, records.ReleaseFileObjects(backup_id));
  return DeleteBackupFileObjects(dest, orphans);
}

absl::Status BackupRecords::SetCopy(const std::string& backup_id, const std::string& destination,
                                    const std::string& state, const std::string& error) {
  return db_->Exec(
      "INSERT INTO backup_copies (backup_id, destination, state, error) VALUES (?, ?, ?, ?) "
      "ON CONFLICT (backup_id) DO UPDATE SET destination = excluded.destination, "
      "state = excluded.state, error = excluded.error",
      {backup_id, destination, state, error});
}

absl::Status BackupRecords::LoadCopy(BackupRecord* b) {
  return db_->Query("SELECT destination, state, error FROM backup_copies WHERE backup_id = ?",
                    {b->id}, [&](const SqlRow& r) {
                      b->copy_destination = r.Text(0);
                      b->copy_state = r.Text(1);
                      b->copy_error = r.Text(2);
                    });
}

absl::Status BackupRecords::DeleteCopy(const std::string& backup_id) {
  return db_->Exec("DELETE FROM backup_copies WHERE backup_id = ?", {backup_id});
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> BackupRecords::FailAllCopying(
    const std::string& error) {
  std::vector<std::pair<std::string, std::string>> out;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(
        db_->Query("SELECT backup_id, destination FROM backup_copies WHERE state = 'copying'", {},
                   [&](const SqlRow& r) { out.emplace_back(r.Text(0), r.Text(1)); }));
    return db_->Exec("UPDATE backup_copies SET state = 'failed', error = ? WHERE state = 'copying'",
                     {error});
  }));
  return out;
}

}  // namespace keyward
