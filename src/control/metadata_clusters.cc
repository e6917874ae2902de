// The SQLite metadata store (sqlite_metadata_store.h): clusters and their recorded state.
#include "absl/strings/str_cat.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward::metadata_internal {

absl::Status SqliteMetadataStore::InsertCluster(const Cluster& c) {
  return db_->Transaction([&]() -> absl::Status {
    // In the insert's own transaction, so a key record deleted or changed meanwhile (by another
    // request or another control-plane replica) cannot get a cluster slipped under it.
    std::optional<std::string> key_state;
    RETURN_IF_ERROR(db_->Query("SELECT state FROM encryption_keys WHERE id=?",
                               {c.encryption_key_id},
                               [&](const SqlRow& r) { key_state = r.Text(0); }));
    if (!key_state) {
      return absl::FailedPreconditionError(
          absl::StrCat("encryption key ", c.encryption_key_id,
                       " was deleted while the cluster was being created; create a key for ",
                       c.cloud_provider, "/", c.region, ", test it, then create the cluster"));
    }
    if (*key_state != "active") {
      return absl::FailedPreconditionError(absl::StrCat(
          "encryption key ", c.encryption_key_id, " became ", *key_state,
          " while the cluster was being created (its settings changed or a test failed); test "
          "it again: keyward key test --project ",
          c.project_id, " ", c.encryption_key_id));
    }
    return InsertClusterRow(c);
  });
}

absl::Status SqliteMetadataStore::InsertClusterRow(const Cluster& c) {
  absl::Status st = db_->Exec(
      "INSERT INTO clusters(id, project_id, name, cloud_provider, region, tier, state, "
      "state_message, port, password_sha256, encryption_key_id, backup_policy, created_at, "
      "updated_at, durability, engine, nodes) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
      {c.id, c.project_id, c.name, c.cloud_provider, c.region, c.tier, c.state, c.state_message,
       int64_t{c.port}, c.password_sha256_hex, c.encryption_key_id, c.backup_policy_json,
       c.created_at, c.updated_at, c.durability, c.engine.empty() ? "kv" : c.engine,
       int64_t{c.nodes}});
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(
        absl::StrCat("a cluster named '", c.name, "' already exists in this project"));
  }
  return st;
}

absl::StatusOr<std::optional<Cluster>> SqliteMetadataStore::GetCluster(const std::string& id) {
  std::optional<Cluster> out;
  RETURN_IF_ERROR(db_->Query(absl::StrCat("SELECT ", kClusterCols, " FROM clusters WHERE id=?"),
                             {id}, [&](const SqlRow& r) { out = ClusterRow(r); }));
  return out;
}

absl::StatusOr<std::vector<Cluster>> SqliteMetadataStore::ListClusters(
    const std::string& project_id, Page page) {
  std::vector<Cluster> out;
  std::string sql = absl::StrCat("SELECT ", kClusterCols, " FROM clusters");
  std::vector<SqlValue> params;
  if (!project_id.empty()) {
    sql += " WHERE project_id=?";
    params.push_back(project_id);
  }
  sql += " ORDER BY created_at, id LIMIT ? OFFSET ?";
  params.push_back(page.limit);
  params.push_back(page.offset);
  RETURN_IF_ERROR(db_->Query(sql, params, [&](const SqlRow& r) { out.push_back(ClusterRow(r)); }));
  return out;
}

absl::StatusOr<bool> SqliteMetadataStore::TransitionCluster(const std::string& id,
                                                            const std::vector<std::string>& from,
                                                            const ClusterTransition& to) {
  if (from.empty()) return absl::InvalidArgumentError("TransitionCluster needs a from-state");
  std::string sql =
      "UPDATE clusters SET state=?, state_message=?, state_cause=?, updated_at=?, "
      "port=COALESCE(?, port) WHERE id=? AND state IN (?";
  for (size_t i = 1; i < from.size(); ++i) sql += ",?";
  sql += ")";
  std::vector<SqlValue> params = {to.state,
                                  to.message,
                                  to.cause,
                                  to.now,
                                  to.port ? SqlValue(int64_t{*to.port}) : SqlValue(nullptr),
                                  id};
  for (const auto& f : from) params.push_back(f);
  return ExecChanged(sql, params);
}

absl::StatusOr<bool> SqliteMetadataStore::SetClusterBackupPolicy(const std::string& id,
                                                                 const std::string& policy_json,
                                                                 int64_t now) {
  return ExecChanged(
      "UPDATE clusters SET backup_policy=?, updated_at=? WHERE id=? AND state NOT IN "
      "('deleting','deleted')",
      {policy_json, now, id});
}

absl::StatusOr<int64_t> SqliteMetadataStore::AdoptDurability(const std::string& durability) {
  int64_t changed = 0;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(
        db_->Exec("UPDATE clusters SET durability=? WHERE durability=''", {durability}));
    changed = db_->Changes();
    return absl::OkStatus();
  }));
  return changed;
}

absl::Status SqliteMetadataStore::RecordClusterKeyCheck(const std::string& key_id, int64_t at,
                                                        const std::string& error) {
  return db_->Exec(
      "UPDATE clusters SET enc_last_check_at=?, enc_last_check_error=? WHERE "
      "encryption_key_id=? AND state NOT IN ('deleting','deleted')",
      {at, error, key_id});
}

absl::Status SqliteMetadataStore::RecordClusterWrap(const std::string& id,
                                                    const std::string& key_version,
                                                    int64_t wrapped_at,
                                                    const std::string& dictionary_key_id) {
  return db_->Exec(
      "UPDATE clusters SET enc_key_version=?, enc_wrapped_at=?, enc_dictionary_key_id=? WHERE "
      "id=?",
      {key_version, wrapped_at, dictionary_key_id, id});
}

absl::Status SqliteMetadataStore::RecordClusterDataKeys(const std::string& id,
                                                        const std::string& data_key_ids_json) {
  return db_->Exec("UPDATE clusters SET enc_data_key_ids=? WHERE id=?", {data_key_ids_json, id});
}

absl::Status SqliteMetadataStore::RecordClusterReencrypt(const std::string& id,
                                                         const std::string& reencrypt_json) {
  return db_->Exec("UPDATE clusters SET enc_reencrypt=? WHERE id=?", {reencrypt_json, id});
}

absl::StatusOr<bool> SqliteMetadataStore::StartClusterReencrypt(const std::string& id,
                                                                const std::string& running_json) {
  return ExecChanged(
      "UPDATE clusters SET enc_reencrypt=? WHERE id=? AND state <> 'deleted' AND "
      "(NOT json_valid(enc_reencrypt) OR "
      "COALESCE(json_extract(enc_reencrypt, '$.state'), '') <> 'running')",
      {running_json, id});
}

absl::StatusOr<bool> SqliteMetadataStore::SetClusterPassword(const std::string& id,
                                                             const std::string& password_sha256_hex,
                                                             int64_t now) {
  return ExecChanged(
      "UPDATE clusters SET password_sha256=?, updated_at=? WHERE id=? AND state NOT IN "
      "('deleting','deleted')",
      {password_sha256_hex, now, id});
}

}  // namespace keyward::metadata_internal
