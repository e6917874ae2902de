// The SQLite metadata store (sqlite_metadata_store.h): encryption-key records.
#include "absl/strings/str_cat.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward::metadata_internal {

absl::Status SqliteMetadataStore::InsertKey(const EncryptionKey& k) {
  absl::Status st = InsertKeyRow(k);
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "project ", k.project_id, " already has an encryption key for ", k.provider, " in ",
        k.region, " (one key per provider and region); use that key, or test it again"));
  }
  return st;
}

absl::StatusOr<std::optional<EncryptionKey>> SqliteMetadataStore::GetKey(const std::string& id) {
  std::optional<EncryptionKey> out;
  RETURN_IF_ERROR(db_->Query(absl::StrCat("SELECT ", kKeyCols, " FROM encryption_keys WHERE id=?"),
                             {id}, [&](const SqlRow& r) { out = KeyRow(r); }));
  return out;
}

absl::StatusOr<std::vector<EncryptionKey>> SqliteMetadataStore::ListKeys(
    const std::string& project_id, Page page) {
  std::vector<EncryptionKey> out;
  RETURN_IF_ERROR(db_->Query(
      absl::StrCat(
          "SELECT ", kKeyCols,
          " FROM encryption_keys WHERE project_id=? ORDER BY created_at, id LIMIT ? OFFSET ?"),
      {project_id, page.limit, page.offset}, [&](const SqlRow& r) { out.push_back(KeyRow(r)); }));
  return out;
}

absl::Status SqliteMetadataStore::UpdateKeyState(const std::string& id, const std::string& state,
                                                 const std::string& message, int64_t now) {
  return db_->Exec("UPDATE encryption_keys SET state=?, status_message=?, updated_at=? WHERE id=?",
                   {state, message, now, id});
}

absl::StatusOr<bool> SqliteMetadataStore::TransitionKey(const std::string& id,
                                                        const std::string& from,
                                                        const std::string& to,
                                                        const std::string& message, int64_t now) {
  return ExecChanged(
      "UPDATE encryption_keys SET state=?, status_message=?, updated_at=? WHERE id=? AND state=?",
      {to, message, now, id, from});
}

absl::Status SqliteMetadataStore::RecordKeyCheck(const std::string& id, int64_t at,
                                                 const std::string& error,
                                                 const std::string& current_version) {
  return db_->Exec(
      "UPDATE encryption_keys SET last_check_at=?, last_check_error=?, "
      "current_version=CASE WHEN ?='' THEN current_version ELSE ? END WHERE id=?",
      {at, error, current_version, current_version, id});
}

absl::StatusOr<bool> SqliteMetadataStore::SetKeyTestResult(const EncryptionKey& tested,
                                                           const std::string& state,
                                                           const std::string& message,
                                                           int64_t now) {
  return ExecChanged(
      "UPDATE encryption_keys SET state=?, status_message=?, updated_at=? WHERE id=? AND "
      "key_name=? AND config_json=?",
      {state, message, now, tested.id, tested.key_name, tested.config_json});
}

absl::StatusOr<std::vector<Cluster>> SqliteMetadataStore::ChangeKeySettingsIfUnused(
    const EncryptionKey& k) {
  std::vector<Cluster> users;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    ASSIGN_OR_RETURN(users, LiveClustersOfKey(k.id));
    if (!users.empty()) return absl::OkStatus();
    // What the monitor learnt about the old key says nothing about the new one.
    RETURN_IF_ERROR(db_->Exec(
        "UPDATE encryption_keys SET key_name=?, config_json=?, state=?, status_message=?, "
        "updated_at=?, last_check_at=0, last_check_error='', current_version='' WHERE id=? AND "
        "NOT EXISTS (SELECT 1 FROM clusters WHERE encryption_key_id=? AND state <> 'deleted')",
        {k.key_name, k.config_json, k.state, k.status_message, k.updated_at, k.id, k.id}));
    if (db_->Changes() == 0) return KeyGone(k.id);
    return absl::OkStatus();
  }));
  return users;
}

absl::StatusOr<std::vector<Cluster>> SqliteMetadataStore::DeleteKeyIfUnused(const std::string& id) {
  std::vector<Cluster> users;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    ASSIGN_OR_RETURN(users, LiveClustersOfKey(id));
    if (!users.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(db_->Exec(
        "DELETE FROM encryption_keys WHERE id=? AND NOT EXISTS (SELECT 1 FROM clusters WHERE "
        "encryption_key_id=? AND state <> 'deleted')",
        {id, id}));
    if (db_->Changes() == 0) return KeyGone(id);
    return absl::OkStatus();
  }));
  return users;
}

// Clusters that still need the key (every state but deleted: a paused cluster resumes under it).
absl::StatusOr<std::vector<Cluster>> SqliteMetadataStore::LiveClustersOfKey(
    const std::string& key_id) {
  std::vector<Cluster> out;
  RETURN_IF_ERROR(db_->Query(
      absl::StrCat("SELECT ", kClusterCols,
                   " FROM clusters WHERE encryption_key_id=? AND state <> 'deleted' ORDER BY "
                   "created_at, id"),
      {key_id}, [&](const SqlRow& r) { out.push_back(ClusterRow(r)); }));
  return out;
}

absl::Status SqliteMetadataStore::KeyGone(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("encryption key '", id, "' does not exist"));
}

absl::Status SqliteMetadataStore::InsertKeyRow(const EncryptionKey& k) {
  return db_->Exec(
      "INSERT INTO encryption_keys(id, project_id, provider, region, state, key_name, "
      "config_json, status_message, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
      {k.id, k.project_id, k.provider, k.region, k.state, k.key_name, k.config_json,
       k.status_message, k.created_at, k.updated_at});
}

}  // namespace keyward::metadata_internal
