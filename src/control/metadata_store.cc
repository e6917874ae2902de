#include "control/metadata_store.h"

#include "absl/strings/str_cat.h"
#include "control/sqlite_db.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward {
namespace metadata_internal {

// Numbered migrations; the schema version is PRAGMA user_version. Append, never edit.
const char* const kMigrations[] = {
    // 1: the whole control plane.
    R"sql(
CREATE TABLE organizations (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE users (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL, org_role TEXT NOT NULL CHECK (org_role IN ('owner','member')),
  created_at INTEGER NOT NULL);
CREATE TABLE tokens (
  sha256 TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
  expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE projects (
  id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES organizations(id), name TEXT NOT NULL,
  cmek_enabled INTEGER NOT NULL, created_at INTEGER NOT NULL, UNIQUE (org_id, name));
CREATE TABLE project_members (
  project_id TEXT NOT NULL REFERENCES projects(id), user_id TEXT NOT NULL REFERENCES users(id),
  role TEXT NOT NULL CHECK (role IN ('project_owner','project_member','project_viewer')),
  PRIMARY KEY (project_id, user_id));
CREATE TABLE encryption_keys (
  id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id),
  provider TEXT NOT NULL, region TEXT NOT NULL, state TEXT NOT NULL, key_name TEXT NOT NULL,
  config_json TEXT NOT NULL, status_message TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  UNIQUE (project_id, provider, region));
CREATE TABLE clusters (
  id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
  cloud_provider TEXT NOT NULL, region TEXT NOT NULL, tier TEXT NOT NULL, state TEXT NOT NULL,
  state_message TEXT NOT NULL, port INTEGER NOT NULL, password_sha256 TEXT NOT NULL,
  encryption_key_id TEXT NOT NULL REFERENCES encryption_keys(id), backup_policy TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE UNIQUE INDEX clusters_live_name ON clusters(project_id, name) WHERE state <> 'deleted';
CREATE TABLE audit_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, project_id TEXT NOT NULL, at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, key_id TEXT NOT NULL,
  key_version TEXT NOT NULL, result TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX audit_by_project_time ON audit_events(project_id, at_ms);
CREATE TABLE idempotency (
  user_id TEXT NOT NULL, key TEXT NOT NULL, route TEXT NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (user_id, key, route));
)sql",
    // 2: key health and the encryption state of each cluster.
    R"sql(
ALTER TABLE clusters ADD COLUMN state_cause TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN enc_key_version TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN enc_wrapped_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN enc_dictionary_key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN enc_data_key_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clusters ADD COLUMN enc_last_check_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN enc_last_check_error TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN enc_reencrypt TEXT NOT NULL DEFAULT '';
ALTER TABLE encryption_keys ADD COLUMN last_check_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE encryption_keys ADD COLUMN last_check_error TEXT NOT NULL DEFAULT '';
ALTER TABLE encryption_keys ADD COLUMN current_version TEXT NOT NULL DEFAULT '';
CREATE INDEX clusters_by_key ON clusters(encryption_key_id);
)sql",
    // 3: key records can be deleted. Deleted clusters keep naming the key they were under, so the
    // foreign key goes; "no live cluster without its key" is kept by DeleteKeyIfUnused and
    // InsertCluster, each one transaction. (SQLite cannot drop a constraint: rebuild the table.)
    R"sql(
CREATE TABLE clusters_v3 (
  id TEXT PRIMARY KEY, project_id TEXT NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
  cloud_provider TEXT NOT NULL, region TEXT NOT NULL, tier TEXT NOT NULL, state TEXT NOT NULL,
  state_message TEXT NOT NULL, port INTEGER NOT NULL, password_sha256 TEXT NOT NULL,
  encryption_key_id TEXT NOT NULL, backup_policy TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  state_cause TEXT NOT NULL DEFAULT '', enc_key_version TEXT NOT NULL DEFAULT '',
  enc_wrapped_at INTEGER NOT NULL DEFAULT 0, enc_dictionary_key_id TEXT NOT NULL DEFAULT '',
  enc_data_key_ids TEXT NOT NULL DEFAULT '[]', enc_last_check_at INTEGER NOT NULL DEFAULT 0,
  enc_last_check_error TEXT NOT NULL DEFAULT '', enc_reencrypt TEXT NOT NULL DEFAULT '');
INSERT INTO clusters_v3 (id, project_id, name, cloud_provider, region, tier, state, state_message,
  port, password_sha256, encryption_key_id, backup_policy, created_at, updated_at, state_cause,
  enc_key_version, enc_wrapped_at, enc_dictionary_key_id, enc_data_key_ids, enc_last_check_at,
  enc_last_check_error, enc_reencrypt)
SELECT id, project_id, name, cloud_provider, region, tier, state, state_message,
  port, password_sha256, encryption_key_id, backup_policy, created_at, updated_at, state_cause,
  enc_key_version, enc_wrapped_at, enc_dictionary_key_id, enc_data_key_ids, enc_last_check_at,
  enc_last_check_error, enc_reencrypt FROM clusters;
DROP TABLE clusters;
ALTER TABLE clusters_v3 RENAME TO clusters;
CREATE UNIQUE INDEX clusters_live_name ON clusters(project_id, name) WHERE state <> 'deleted';
CREATE INDEX clusters_by_key ON clusters(encryption_key_id);
)sql",
    // 4: each cluster's durability (when writes are acknowledged). '' until the first server
    // that knows it starts: clusters from before get that server's --durability (AdoptDurability).
    R"sql(
ALTER TABLE clusters ADD COLUMN durability TEXT NOT NULL DEFAULT '';
)sql",
    // 5: idempotency keys are claimed before the request runs (state running → done) and keep
    // the SHA-256 of the body they came with. Old records (replayed by a route name, not a path)
    // are dropped: a key is only meant to cover a client's retries.
    R"sql(
DROP TABLE IF EXISTS idempotency;
CREATE TABLE IF NOT EXISTS idempotency_claims (
  user_id TEXT NOT NULL, key TEXT NOT NULL, route TEXT NOT NULL, body_sha256 TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('running','done')), status INTEGER NOT NULL DEFAULT 0,
  body TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, PRIMARY KEY (user_id, key, route));
)sql",
    // 6: tokens get an id (to list and revoke them) and a kind; the organization-level
    // project_creator grant.
    R"sql(
ALTER TABLE tokens ADD COLUMN id TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'member';
UPDATE tokens SET id = 't-' || lower(hex(randomblob(8)));
UPDATE tokens SET kind = 'owner' WHERE user_id IN (SELECT id FROM users WHERE org_role = 'owner');
CREATE UNIQUE INDEX tokens_by_id ON tokens(id);
CREATE INDEX tokens_by_user ON tokens(user_id);
CREATE TABLE org_grants (
  user_id TEXT NOT NULL REFERENCES users(id),
  role TEXT NOT NULL CHECK (role IN ('project_creator')), PRIMARY KEY (user_id, role));
)sql",
    // 7: each cluster's engine ("kv": RocksDB behind RESP; "mariadb": a supervised mariadbd).
    // Every cluster from before is a kv cluster.
    R"sql(
ALTER TABLE clusters ADD COLUMN engine TEXT NOT NULL DEFAULT 'kv';
)sql",
    // 8: how many nodes serve each cluster (3: a MariaDB Galera cluster). Every cluster from
    // before has one.
    R"sql(
ALTER TABLE clusters ADD COLUMN nodes INTEGER NOT NULL DEFAULT 1;
)sql",
    // 9: idempotency claims carry a generation (1, +1 at each takeover of a stale claim), so a
    // holder whose claim was taken over can neither refresh nor finish the new holder's.
    R"sql(
ALTER TABLE idempotency_claims ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
)sql",
};

constexpr char kProjectCols[] = "id, org_id, name, cmek_enabled, created_at";
constexpr char kUserCols[] =
    "u.id, u.org_id, u.name, u.org_role, u.created_at, EXISTS (SELECT 1 FROM org_grants g WHERE "
    "g.user_id = u.id AND g.role = 'project_creator')";

User UserRow(const SqlRow& r) {
  User u;
  u.id = r.Text(0);
  u.org_id = r.Text(1);
  u.name = r.Text(2);
  u.org_role = r.Text(3);
  u.created_at = r.Int(4);
  u.project_creator = r.Int(5) != 0;
  return u;
}
constexpr char kKeyCols[] =
    "id, project_id, provider, region, state, key_name, config_json, status_message, created_at, "
    "updated_at, last_check_at, last_check_error, current_version";
constexpr char kClusterCols[] =
    "id, project_id, name, cloud_provider, region, tier, state, state_message, port, "
    "password_sha256, encryption_key_id, backup_policy, created_at, updated_at, state_cause, "
    "enc_key_version, enc_wrapped_at, enc_dictionary_key_id, enc_data_key_ids, enc_last_check_at, "
    "enc_last_check_error, enc_reencrypt, "
    "(SELECT provider FROM encryption_keys k WHERE k.id = clusters.encryption_key_id), "
    "(SELECT key_name FROM encryption_keys k WHERE k.id = clusters.encryption_key_id), "
    "durability, engine, nodes";

Project ProjectRow(const SqlRow& r) {
  return Project{r.Text(0), r.Text(1), r.Text(2), r.Int(3) != 0, r.Int(4)};
}

EncryptionKey KeyRow(const SqlRow& r) {
  EncryptionKey k;
  k.id = r.Text(0);
  k.project_id = r.Text(1);
  k.provider = r.Text(2);
  k.region = r.Text(3);
  k.state = r.Text(4);
  k.key_name = r.Text(5);
  k.config_json = r.Text(6);
  k.status_message = r.Text(7);
  k.created_at = r.Int(8);
  k.updated_at = r.Int(9);
  k.last_check_at = r.Int(10);
  k.last_check_error = r.Text(11);
  k.current_version = r.Text(12);
  return k;
}

Cluster ClusterRow(const SqlRow& r) {
  Cluster c;
  c.id = r.Text(0);
  c.project_id = r.Text(1);
  c.name = r.Text(2);
  c.cloud_provider = r.Text(3);
  c.region = r.Text(4);
  c.tier = r.Text(5);
  c.state = r.Text(6);
  c.state_message = r.Text(7);
  c.port = static_cast<int>(r.Int(8));
  c.password_sha256_hex = r.Text(9);
  c.encryption_key_id = r.Text(10);
  c.backup_policy_json = r.Text(11);
  c.created_at = r.Int(12);
  c.updated_at = r.Int(13);
  c.state_cause = r.Text(14);
  c.encryption.key_version = r.Text(15);
  c.encryption.wrapped_at = r.Int(16);
  c.encryption.dictionary_key_id = r.Text(17);
  c.encryption.data_key_ids_json = r.Text(18);
  c.encryption.last_key_check_at = r.Int(19);
  c.encryption.last_key_check_error = r.Text(20);
  c.encryption.reencrypt_json = r.Text(21);
  c.encryption.provider = r.Text(22);
  c.encryption.key_name = r.Text(23);
  c.durability = r.Text(24);
  c.engine = r.Text(25);
  c.nodes = static_cast<int>(r.Int(26));
  return c;
}

// A membership row whose change leaves its project (the next parameter) with a project_owner.
constexpr char kNotLastOwner[] =
    "(role <> 'project_owner' OR (SELECT COUNT(*) FROM project_members o WHERE o.project_id = ? "
    "AND o.role = 'project_owner') > 1)";

absl::Status SqliteMetadataStore::Migrate() {
  int64_t version = 0;
  RETURN_IF_ERROR(
      db_->Query("PRAGMA user_version", {}, [&](const SqlRow& r) { version = r.Int(0); }));
  int64_t target = static_cast<int64_t>(std::size(kMigrations));
  if (version > target) {
    return absl::FailedPreconditionError(absl::StrCat("metadata schema version ", version,
                                                      " is newer than this keyward (", target,
                                                      "); run the newer keyward"));
  }
  for (int64_t i = version; i < target; ++i) {
    RETURN_IF_ERROR(db_->Transaction([&] {
      RETURN_IF_ERROR(db_->ExecScript(kMigrations[i]));
      return db_->ExecScript(absl::StrCat("PRAGMA user_version=", i + 1));
    }));
  }
  return absl::OkStatus();
}

// Runs one statement and reports whether it changed a row, atomically (the connection is
// shared: the change count must be read inside the same transaction).
absl::StatusOr<bool> SqliteMetadataStore::ExecChanged(const std::string& sql,
                                                      const std::vector<SqlValue>& params) {
  bool changed = false;
  RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(db_->Exec(sql, params));
    changed = db_->Changes() > 0;
    return absl::OkStatus();
  }));
  return changed;
}

}  // namespace metadata_internal

absl::StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteMetadataStore(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  auto store = std::make_unique<metadata_internal::SqliteMetadataStore>(std::move(db));
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

}  // namespace keyward
