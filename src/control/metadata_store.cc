#include "control/metadata_store.h"

#include "absl/strings/str_cat.h"
#include "control/sqlite_db.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

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
    "durability, engine";

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
  return c;
}

// A membership row whose change leaves its project (the next parameter) with a project_owner.
constexpr char kNotLastOwner[] =
    "(role <> 'project_owner' OR (SELECT COUNT(*) FROM project_members o WHERE o.project_id = ? "
    "AND o.role = 'project_owner') > 1)";

class SqliteMetadataStore : public MetadataStore {
 public:
  explicit SqliteMetadataStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  absl::Status Migrate() {
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

  absl::Status Bootstrap(const std::string& org_id, const std::string& org_name, const User& owner,
                         const TokenGrant& token) override {
    return db_->Transaction([&]() -> absl::Status {
      bool exists = false;
      RETURN_IF_ERROR(
          db_->Query("SELECT 1 FROM organizations", {}, [&](const SqlRow&) { exists = true; }));
      if (exists) return absl::AlreadyExistsError("organization already exists");
      RETURN_IF_ERROR(db_->Exec("INSERT INTO organizations VALUES(?,?,?)",
                                {org_id, org_name, owner.created_at}));
      RETURN_IF_ERROR(InsertUserAndToken(owner, token));
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::optional<std::string>> OrganizationId() override {
    std::optional<std::string> id;
    RETURN_IF_ERROR(db_->Query("SELECT id FROM organizations LIMIT 1", {},
                               [&](const SqlRow& r) { id = r.Text(0); }));
    return id;
  }

  absl::StatusOr<std::optional<User>> UserByToken(const std::string& hash, int64_t now) override {
    std::optional<User> user;
    RETURN_IF_ERROR(db_->Query(
        absl::StrCat("SELECT ", kUserCols,
                     ", t.kind, t.expires_at FROM tokens t JOIN users u ON u.id = t.user_id "
                     "WHERE t.sha256 = ? AND (t.expires_at = 0 OR t.expires_at > ?)"),
        {hash, now}, [&](const SqlRow& r) {
          user = UserRow(r);
          user->token_kind = r.Text(6);
          user->token_expires_at = r.Int(7);
        }));
    return user;
  }

  absl::StatusOr<std::optional<User>> GetUser(const std::string& id) override {
    std::optional<User> user;
    RETURN_IF_ERROR(db_->Query(absl::StrCat("SELECT ", kUserCols, " FROM users u WHERE u.id = ?"),
                               {id}, [&](const SqlRow& r) { user = UserRow(r); }));
    return user;
  }

  absl::StatusOr<std::vector<Member>> ListMembers(const std::string& project_id,
                                                  Page page) override {
    std::vector<Member> out;
    RETURN_IF_ERROR(db_->Query(
        absl::StrCat("SELECT ", kUserCols,
                     ", m.role FROM project_members m JOIN users u ON u.id = m.user_id WHERE "
                     "m.project_id = ? ORDER BY u.created_at, u.id LIMIT ? OFFSET ?"),
        {project_id, page.limit, page.offset}, [&](const SqlRow& r) {
          out.push_back(Member{UserRow(r), r.Text(6)});
        }));
    return out;
  }

  absl::StatusOr<bool> ChangeMemberRole(const std::string& project_id, const std::string& user_id,
                                        const std::string& from, const std::string& to) override {
    return ExecChanged(
        absl::StrCat("UPDATE project_members SET role=? WHERE project_id=? AND user_id=? AND "
                     "role=? AND (? = 'project_owner' OR ",
                     kNotLastOwner, ")"),
        {to, project_id, user_id, from, to, project_id});
  }

  absl::StatusOr<bool> RemoveMember(const std::string& project_id, const std::string& user_id,
                                    const std::string& role) override {
    bool removed = false;
    RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(db_->Exec(
          absl::StrCat("DELETE FROM project_members WHERE project_id=? AND user_id=? AND role=? "
                       "AND ",
                       kNotLastOwner),
          {project_id, user_id, role, project_id}));
      removed = db_->Changes() > 0;
      if (!removed) return absl::OkStatus();
      // Nothing left to reach: the user's credentials go with the last membership.
      return db_->Exec(
          "DELETE FROM tokens WHERE user_id=? AND NOT EXISTS (SELECT 1 FROM project_members "
          "WHERE user_id=?) AND (SELECT org_role FROM users WHERE id=?) <> 'owner'",
          {user_id, user_id, user_id});
    }));
    return removed;
  }

  absl::Status SetProjectCreator(const std::string& user_id, bool granted) override {
    if (granted) {
      return db_->Exec("INSERT OR IGNORE INTO org_grants VALUES(?, 'project_creator')", {user_id});
    }
    return db_->Exec("DELETE FROM org_grants WHERE user_id=? AND role='project_creator'",
                     {user_id});
  }

  absl::Status InsertToken(const std::string& user_id, const TokenGrant& token,
                           int64_t now) override {
    return InsertTokenRow(user_id, token, now);
  }

  absl::StatusOr<std::vector<TokenInfo>> ListTokens(const std::string& user_id) override {
    std::vector<TokenInfo> out;
    RETURN_IF_ERROR(db_->Query(
        "SELECT id, user_id, kind, created_at, expires_at FROM tokens WHERE user_id=? ORDER BY "
        "created_at, id",
        {user_id}, [&](const SqlRow& r) {
          out.push_back(TokenInfo{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4)});
        }));
    return out;
  }

  absl::StatusOr<std::optional<TokenInfo>> GetToken(const std::string& id) override {
    std::optional<TokenInfo> out;
    RETURN_IF_ERROR(
        db_->Query("SELECT id, user_id, kind, created_at, expires_at FROM tokens WHERE id=?", {id},
                   [&](const SqlRow& r) {
                     out = TokenInfo{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4)};
                   }));
    return out;
  }

  absl::StatusOr<bool> DeleteToken(const std::string& id, const std::string& user_id) override {
    return ExecChanged("DELETE FROM tokens WHERE id=? AND user_id=?", {id, user_id});
  }

  absl::Status ReplaceOwnerToken(const std::string& user_id, const TokenGrant& token,
                                 int64_t now) override {
    return db_->Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(db_->Exec("DELETE FROM tokens WHERE user_id=? AND kind='owner'", {user_id}));
      TokenGrant owner = token;
      owner.kind = "owner";
      return InsertTokenRow(user_id, owner, now);
    });
  }

  absl::Status CreateProject(const Project& p, const std::string& owner_user_id,
                             const std::optional<EncryptionKey>& escrow_key) override {
    return db_->Transaction([&]() -> absl::Status {
      absl::Status st = db_->Exec("INSERT INTO projects VALUES(?,?,?,?,?)",
                                  {p.id, p.org_id, p.name, int64_t{p.cmek_enabled}, p.created_at});
      if (absl::IsAlreadyExists(st)) {
        return absl::AlreadyExistsError(
            absl::StrCat("a project named '", p.name, "' already exists; choose another name"));
      }
      RETURN_IF_ERROR(st);
      RETURN_IF_ERROR(db_->Exec("INSERT INTO project_members VALUES(?,?,'project_owner')",
                                {p.id, owner_user_id}));
      if (escrow_key) RETURN_IF_ERROR(InsertKeyRow(*escrow_key));
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::optional<Project>> GetProject(const std::string& id) override {
    std::optional<Project> out;
    RETURN_IF_ERROR(db_->Query(absl::StrCat("SELECT ", kProjectCols, " FROM projects WHERE id=?"),
                               {id}, [&](const SqlRow& r) { out = ProjectRow(r); }));
    return out;
  }

  absl::StatusOr<std::vector<Project>> ListProjects(const std::string& org_id,
                                                    const std::optional<std::string>& member,
                                                    Page page) override {
    std::vector<Project> out;
    std::string sql = absl::StrCat("SELECT ", kProjectCols, " FROM projects WHERE org_id=?");
    std::vector<SqlValue> params = {org_id};
    if (member) {
      sql += " AND id IN (SELECT project_id FROM project_members WHERE user_id=?)";
      params.push_back(*member);
    }
    // rowid: creation order within a second too (the default project, created first, is first).
    sql += " ORDER BY created_at, rowid LIMIT ? OFFSET ?";
    params.push_back(page.limit);
    params.push_back(page.offset);
    RETURN_IF_ERROR(
        db_->Query(sql, params, [&](const SqlRow& r) { out.push_back(ProjectRow(r)); }));
    return out;
  }

  absl::Status RenameProject(const std::string& id, const std::string& name) override {
    absl::Status st = db_->Exec("UPDATE projects SET name=? WHERE id=?", {name, id});
    if (absl::IsAlreadyExists(st)) {
      return absl::AlreadyExistsError(absl::StrCat("a project named '", name, "' already exists"));
    }
    return st;
  }

  absl::StatusOr<std::string> ProjectRole(const std::string& project_id,
                                          const std::string& user_id) override {
    std::string role;
    RETURN_IF_ERROR(db_->Query("SELECT role FROM project_members WHERE project_id=? AND user_id=?",
                               {project_id, user_id}, [&](const SqlRow& r) { role = r.Text(0); }));
    return role;
  }

  absl::Status AddMember(const std::string& project_id, const User& user, const std::string& role,
                         const TokenGrant& token) override {
    return db_->Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(InsertUserAndToken(user, token));
      return db_->Exec("INSERT INTO project_members VALUES(?,?,?)", {project_id, user.id, role});
    });
  }

  absl::Status InsertKey(const EncryptionKey& k) override {
    absl::Status st = InsertKeyRow(k);
    if (absl::IsAlreadyExists(st)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "project ", k.project_id, " already has an encryption key for ", k.provider, " in ",
          k.region, " (one key per provider and region); use that key, or test it again"));
    }
    return st;
  }

  absl::StatusOr<std::optional<EncryptionKey>> GetKey(const std::string& id) override {
    std::optional<EncryptionKey> out;
    RETURN_IF_ERROR(
        db_->Query(absl::StrCat("SELECT ", kKeyCols, " FROM encryption_keys WHERE id=?"), {id},
                   [&](const SqlRow& r) { out = KeyRow(r); }));
    return out;
  }

  absl::StatusOr<std::vector<EncryptionKey>> ListKeys(const std::string& project_id,
                                                      Page page) override {
    std::vector<EncryptionKey> out;
    RETURN_IF_ERROR(db_->Query(
        absl::StrCat(
            "SELECT ", kKeyCols,
            " FROM encryption_keys WHERE project_id=? ORDER BY created_at, id LIMIT ? OFFSET ?"),
        {project_id, page.limit, page.offset}, [&](const SqlRow& r) { out.push_back(KeyRow(r)); }));
    return out;
  }

  absl::Status UpdateKeyState(const std::string& id, const std::string& state,
                              const std::string& message, int64_t now) override {
    return db_->Exec(
        "UPDATE encryption_keys SET state=?, status_message=?, updated_at=? WHERE id=?",
        {state, message, now, id});
  }

  absl::StatusOr<bool> TransitionKey(const std::string& id, const std::string& from,
                                     const std::string& to, const std::string& message,
                                     int64_t now) override {
    return ExecChanged(
        "UPDATE encryption_keys SET state=?, status_message=?, updated_at=? WHERE id=? AND state=?",
        {to, message, now, id, from});
  }

  absl::Status RecordKeyCheck(const std::string& id, int64_t at, const std::string& error,
                              const std::string& current_version) override {
    return db_->Exec(
        "UPDATE encryption_keys SET last_check_at=?, last_check_error=?, "
        "current_version=CASE WHEN ?='' THEN current_version ELSE ? END WHERE id=?",
        {at, error, current_version, current_version, id});
  }

  absl::StatusOr<bool> SetKeyTestResult(const EncryptionKey& tested, const std::string& state,
                                        const std::string& message, int64_t now) override {
    return ExecChanged(
        "UPDATE encryption_keys SET state=?, status_message=?, updated_at=? WHERE id=? AND "
        "key_name=? AND config_json=?",
        {state, message, now, tested.id, tested.key_name, tested.config_json});
  }

  absl::StatusOr<std::vector<Cluster>> ChangeKeySettingsIfUnused(const EncryptionKey& k) override {
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

  absl::StatusOr<std::vector<Cluster>> DeleteKeyIfUnused(const std::string& id) override {
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

  absl::Status InsertCluster(const Cluster& c) override {
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

  absl::Status InsertClusterRow(const Cluster& c) {
    absl::Status st = db_->Exec(
        "INSERT INTO clusters(id, project_id, name, cloud_provider, region, tier, state, "
        "state_message, port, password_sha256, encryption_key_id, backup_policy, created_at, "
        "updated_at, durability, engine) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        {c.id, c.project_id, c.name, c.cloud_provider, c.region, c.tier, c.state, c.state_message,
         int64_t{c.port}, c.password_sha256_hex, c.encryption_key_id, c.backup_policy_json,
         c.created_at, c.updated_at, c.durability, c.engine.empty() ? "kv" : c.engine});
    if (absl::IsAlreadyExists(st)) {
      return absl::AlreadyExistsError(
          absl::StrCat("a cluster named '", c.name, "' already exists in this project"));
    }
    return st;
  }

  absl::StatusOr<std::optional<Cluster>> GetCluster(const std::string& id) override {
    std::optional<Cluster> out;
    RETURN_IF_ERROR(db_->Query(absl::StrCat("SELECT ", kClusterCols, " FROM clusters WHERE id=?"),
                               {id}, [&](const SqlRow& r) { out = ClusterRow(r); }));
    return out;
  }

  absl::StatusOr<std::vector<Cluster>> ListClusters(const std::string& project_id,
                                                    Page page) override {
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
    RETURN_IF_ERROR(
        db_->Query(sql, params, [&](const SqlRow& r) { out.push_back(ClusterRow(r)); }));
    return out;
  }

  absl::StatusOr<bool> TransitionCluster(const std::string& id,
                                         const std::vector<std::string>& from,
                                         const ClusterTransition& to) override {
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

  absl::StatusOr<bool> SetClusterBackupPolicy(const std::string& id, const std::string& policy_json,
                                              int64_t now) override {
    return ExecChanged(
        "UPDATE clusters SET backup_policy=?, updated_at=? WHERE id=? AND state NOT IN "
        "('deleting','deleted')",
        {policy_json, now, id});
  }

  absl::StatusOr<int64_t> AdoptDurability(const std::string& durability) override {
    int64_t changed = 0;
    RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(
          db_->Exec("UPDATE clusters SET durability=? WHERE durability=''", {durability}));
      changed = db_->Changes();
      return absl::OkStatus();
    }));
    return changed;
  }

  absl::Status RecordClusterKeyCheck(const std::string& key_id, int64_t at,
                                     const std::string& error) override {
    return db_->Exec(
        "UPDATE clusters SET enc_last_check_at=?, enc_last_check_error=? WHERE "
        "encryption_key_id=? AND state NOT IN ('deleting','deleted')",
        {at, error, key_id});
  }

  absl::Status RecordClusterWrap(const std::string& id, const std::string& key_version,
                                 int64_t wrapped_at,
                                 const std::string& dictionary_key_id) override {
    return db_->Exec(
        "UPDATE clusters SET enc_key_version=?, enc_wrapped_at=?, enc_dictionary_key_id=? WHERE "
        "id=?",
        {key_version, wrapped_at, dictionary_key_id, id});
  }

  absl::Status RecordClusterDataKeys(const std::string& id,
                                     const std::string& data_key_ids_json) override {
    return db_->Exec("UPDATE clusters SET enc_data_key_ids=? WHERE id=?", {data_key_ids_json, id});
  }

  absl::Status RecordClusterReencrypt(const std::string& id,
                                      const std::string& reencrypt_json) override {
    return db_->Exec("UPDATE clusters SET enc_reencrypt=? WHERE id=?", {reencrypt_json, id});
  }

  absl::StatusOr<bool> StartClusterReencrypt(const std::string& id,
                                             const std::string& running_json) override {
    return ExecChanged(
        "UPDATE clusters SET enc_reencrypt=? WHERE id=? AND state <> 'deleted' AND "
        "(NOT json_valid(enc_reencrypt) OR "
        "COALESCE(json_extract(enc_reencrypt, '$.state'), '') <> 'running')",
        {running_json, id});
  }

  absl::Status AppendAudit(const AuditEvent& e) override {
    return db_->Exec(
        "INSERT INTO audit_events(project_id, at_ms, actor, action, target, key_id, key_version, "
        "result, message) VALUES(?,?,?,?,?,?,?,?,?)",
        {e.project_id, e.at_ms, e.actor, e.action, e.target, e.key_id, e.key_version, e.result,
         e.message});
  }

  using MetadataStore::ListAudit;
  absl::StatusOr<std::vector<AuditEvent>> ListAudit(const std::string& project_id,
                                                    const AuditFilter& f, Page page) override {
    std::string sql =
        "SELECT id, project_id, at_ms, actor, action, target, key_id, key_version, result, message "
        "FROM audit_events WHERE project_id=? AND at_ms>=? AND at_ms<=?";
    std::vector<SqlValue> args = {project_id, f.since_ms, f.until_ms};
    // instr(...) = 1 is a prefix test that, unlike LIKE, treats '_' and '%' in ids literally.
    if (!f.cluster_id.empty()) {
      // "cluster <id>" ends the message or is followed by " (name)" or ",": never a longer id.
      sql += " AND (target=? OR instr(message || ' ', ?) > 0 OR instr(message, ?) > 0)";
      args.push_back(f.cluster_id);
      args.push_back(absl::StrCat("cluster ", f.cluster_id, " "));
      args.push_back(absl::StrCat("cluster ", f.cluster_id, ","));
    }
    if (!f.key_id.empty()) {
      sql += " AND (target=? OR key_id=? OR instr(key_id, ?) = 1)";
      args.push_back(f.key_id);
      args.push_back(f.key_id);
      args.push_back(absl::StrCat(f.key_id, " ("));
    }
    if (!f.actor.empty()) {
      std::string by_name = absl::StrCat("(", f.actor, ")");
      // Lengths measured by SQLite on both sides, so names outside ASCII compare correctly.
      sql +=
          " AND (actor=? OR instr(actor, ?) = 1 OR (length(actor) > length(?) AND "
          "substr(actor, length(actor) - length(?) + 1) = ?))";
      args.push_back(f.actor);
      args.push_back(absl::StrCat(f.actor, " ("));
      args.push_back(by_name);
      args.push_back(by_name);
      args.push_back(by_name);
    }
    if (!f.action.empty()) {
      sql += " AND (action=? OR instr(action, ?) = 1)";
      args.push_back(f.action);
      args.push_back(absl::StrCat(f.action, "."));
    }
    sql += f.newest_first ? " ORDER BY id DESC" : " ORDER BY id";
    sql += " LIMIT ? OFFSET ?";
    args.push_back(page.limit);
    args.push_back(page.offset);
    std::vector<AuditEvent> out;
    RETURN_IF_ERROR(db_->Query(sql, args, [&](const SqlRow& r) {
      out.push_back(AuditEvent{r.Int(0), r.Text(1), r.Int(2), r.Text(3), r.Text(4), r.Text(5),
                               r.Text(6), r.Text(7), r.Text(8), r.Text(9)});
    }));
    return out;
  }

  absl::StatusOr<bool> SetClusterPassword(const std::string& id,
                                          const std::string& password_sha256_hex,
                                          int64_t now) override {
    return ExecChanged(
        "UPDATE clusters SET password_sha256=?, updated_at=? WHERE id=? AND state NOT IN "
        "('deleting','deleted')",
        {password_sha256_hex, now, id});
  }

  absl::StatusOr<IdempotencyClaim> ClaimIdempotent(const std::string& user_id,
                                                   const std::string& key, const std::string& route,
                                                   const std::string& body_sha256_hex, int64_t now,
                                                   int64_t stale_after_s) override {
    IdempotencyClaim out;
    RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(db_->Exec(
          "INSERT OR IGNORE INTO idempotency_claims(user_id, key, route, body_sha256, state, "
          "created_at) VALUES(?,?,?,?,'running',?)",
          {user_id, key, route, body_sha256_hex, now}));
      if (db_->Changes() > 0) return absl::OkStatus();  // claimed
      std::string hash, state;
      int64_t created = 0;
      RETURN_IF_ERROR(db_->Query(
          "SELECT body_sha256, state, status, body, created_at FROM idempotency_claims WHERE "
          "user_id=? AND key=? AND route=?",
          {user_id, key, route}, [&](const SqlRow& r) {
            hash = r.Text(0);
            state = r.Text(1);
            out.response = StoredResponse{static_cast<int>(r.Int(2)), r.Text(3)};
            created = r.Int(4);
          }));
      if (hash != body_sha256_hex) {
        out.outcome = IdempotencyClaim::Outcome::kDifferentBody;
      } else if (state == "done") {
        out.outcome = IdempotencyClaim::Outcome::kReplay;
      } else if (now - created > stale_after_s) {
        RETURN_IF_ERROR(db_->Exec(
            "UPDATE idempotency_claims SET created_at=? WHERE user_id=? AND key=? AND route=?",
            {now, user_id, key, route}));
        out.outcome = IdempotencyClaim::Outcome::kClaimed;
      } else {
        out.outcome = IdempotencyClaim::Outcome::kRunning;
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status FinishIdempotent(const std::string& user_id, const std::string& key,
                                const std::string& route, const StoredResponse& response) override {
    return db_->Exec(
        "UPDATE idempotency_claims SET state='done', status=?, body=? WHERE user_id=? AND key=? "
        "AND route=?",
        {int64_t{response.status}, response.body, user_id, key, route});
  }

  absl::Status RefreshIdempotent(const std::string& user_id, const std::string& key,
                                 const std::string& route, int64_t now) override {
    return db_->Exec(
        "UPDATE idempotency_claims SET created_at=? WHERE user_id=? AND key=? AND route=? AND "
        "state='running'",
        {now, user_id, key, route});
  }

  absl::Status ReleaseIdempotent(const std::string& user_id, const std::string& key,
                                 const std::string& route) override {
    return db_->Exec(
        "DELETE FROM idempotency_claims WHERE user_id=? AND key=? AND route=? AND "
        "state='running'",
        {user_id, key, route});
  }

 private:
  // Runs one statement and reports whether it changed a row, atomically (the connection is
  // shared: the change count must be read inside the same transaction).
  absl::StatusOr<bool> ExecChanged(const std::string& sql, const std::vector<SqlValue>& params) {
    bool changed = false;
    RETURN_IF_ERROR(db_->Transaction([&]() -> absl::Status {
      RETURN_IF_ERROR(db_->Exec(sql, params));
      changed = db_->Changes() > 0;
      return absl::OkStatus();
    }));
    return changed;
  }

  // Clusters that still need the key (every state but deleted: a paused cluster resumes under it).
  absl::StatusOr<std::vector<Cluster>> LiveClustersOfKey(const std::string& key_id) {
    std::vector<Cluster> out;
    RETURN_IF_ERROR(db_->Query(
        absl::StrCat("SELECT ", kClusterCols,
                     " FROM clusters WHERE encryption_key_id=? AND state <> 'deleted' ORDER BY "
                     "created_at, id"),
        {key_id}, [&](const SqlRow& r) { out.push_back(ClusterRow(r)); }));
    return out;
  }

  static absl::Status KeyGone(const std::string& id) {
    return absl::NotFoundError(absl::StrCat("encryption key '", id, "' does not exist"));
  }

  absl::Status InsertUserAndToken(const User& u, const TokenGrant& t) {
    RETURN_IF_ERROR(db_->Exec("INSERT INTO users VALUES(?,?,?,?,?)",
                              {u.id, u.org_id, u.name, u.org_role, u.created_at}));
    return InsertTokenRow(u.id, t, u.created_at);
  }

  absl::Status InsertTokenRow(const std::string& user_id, const TokenGrant& t, int64_t now) {
    std::string id = t.id;
    if (id.empty()) {
      // Ids are not secrets; the hash's tail would do, but a fresh value says nothing about it.
      RETURN_IF_ERROR(db_->Query("SELECT 't-' || lower(hex(randomblob(8)))", {},
                                 [&](const SqlRow& r) { id = r.Text(0); }));
    }
    return db_->Exec(
        "INSERT INTO tokens(sha256, user_id, expires_at, created_at, id, kind) "
        "VALUES(?,?,?,?,?,?)",
        {t.token_sha256_hex, user_id, t.expires_at, now, id, t.kind});
  }

  absl::Status InsertKeyRow(const EncryptionKey& k) {
    return db_->Exec(
        "INSERT INTO encryption_keys(id, project_id, provider, region, state, key_name, "
        "config_json, status_message, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
        {k.id, k.project_id, k.provider, k.region, k.state, k.key_name, k.config_json,
         k.status_message, k.created_at, k.updated_at});
  }

  std::unique_ptr<SqliteDb> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteMetadataStore(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(path));
  auto store = std::make_unique<SqliteMetadataStore>(std::move(db));
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

}  // namespace keyward
