// The SQLite metadata store (sqlite_metadata_store.h): the organization, users and their API
// tokens.
#include "absl/strings/str_cat.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward::metadata_internal {

absl::Status SqliteMetadataStore::Bootstrap(const std::string& org_id, const std::string& org_name,
                                            const User& owner, const TokenGrant& token) {
  return db_->Transaction([&]() -> absl::Status {
    bool exists = false;
    RETURN_IF_ERROR(
        db_->Query("SELECT 1 FROM organizations", {}, [&](const SqlRow&) { exists = true; }));
    if (exists) return absl::AlreadyExistsError("organization already exists");
    RETURN_IF_ERROR(
        db_->Exec("INSERT INTO organizations VALUES(?,?,?)", {org_id, org_name, owner.created_at}));
    RETURN_IF_ERROR(InsertUserAndToken(owner, token));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::optional<std::string>> SqliteMetadataStore::OrganizationId() {
  std::optional<std::string> id;
  RETURN_IF_ERROR(db_->Query("SELECT id FROM organizations LIMIT 1", {},
                             [&](const SqlRow& r) { id = r.Text(0); }));
  return id;
}

absl::StatusOr<std::optional<User>> SqliteMetadataStore::UserByToken(const std::string& hash,
                                                                     int64_t now) {
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

absl::StatusOr<std::optional<User>> SqliteMetadataStore::GetUser(const std::string& id) {
  std::optional<User> user;
  RETURN_IF_ERROR(db_->Query(absl::StrCat("SELECT ", kUserCols, " FROM users u WHERE u.id = ?"),
                             {id}, [&](const SqlRow& r) { user = UserRow(r); }));
  return user;
}

absl::Status SqliteMetadataStore::SetProjectCreator(const std::string& user_id, bool granted) {
  if (granted) {
    return db_->Exec("INSERT OR IGNORE INTO org_grants VALUES(?, 'project_creator')", {user_id});
  }
  return db_->Exec("DELETE FROM org_grants WHERE user_id=? AND role='project_creator'", {user_id});
}

absl::Status SqliteMetadataStore::InsertToken(const std::string& user_id, const TokenGrant& token,
                                              int64_t now) {
  return InsertTokenRow(user_id, token, now);
}

absl::StatusOr<std::vector<TokenInfo>> SqliteMetadataStore::ListTokens(const std::string& user_id) {
  std::vector<TokenInfo> out;
  RETURN_IF_ERROR(db_->Query(
      "SELECT id, user_id, kind, created_at, expires_at FROM tokens WHERE user_id=? ORDER BY "
      "created_at, id",
      {user_id}, [&](const SqlRow& r) {
        out.push_back(TokenInfo{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4)});
      }));
  return out;
}

absl::StatusOr<std::optional<TokenInfo>> SqliteMetadataStore::GetToken(const std::string& id) {
  std::optional<TokenInfo> out;
  RETURN_IF_ERROR(
      db_->Query("SELECT id, user_id, kind, created_at, expires_at FROM tokens WHERE id=?", {id},
                 [&](const SqlRow& r) {
                   out = TokenInfo{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4)};
                 }));
  return out;
}

absl::StatusOr<bool> SqliteMetadataStore::DeleteToken(const std::string& id,
                                                      const std::string& user_id) {
  return ExecChanged("DELETE FROM tokens WHERE id=? AND user_id=?", {id, user_id});
}

absl::Status SqliteMetadataStore::ReplaceOwnerToken(const std::string& user_id,
                                                    const TokenGrant& token, int64_t now) {
  return db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(db_->Exec("DELETE FROM tokens WHERE user_id=? AND kind='owner'", {user_id}));
    TokenGrant owner = token;
    owner.kind = "owner";
    return InsertTokenRow(user_id, owner, now);
  });
}

absl::Status SqliteMetadataStore::InsertUserAndToken(const User& u, const TokenGrant& t) {
  RETURN_IF_ERROR(db_->Exec("INSERT INTO users VALUES(?,?,?,?,?)",
                            {u.id, u.org_id, u.name, u.org_role, u.created_at}));
  return InsertTokenRow(u.id, t, u.created_at);
}

absl::Status SqliteMetadataStore::InsertTokenRow(const std::string& user_id, const TokenGrant& t,
                                                 int64_t now) {
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

}  // namespace keyward::metadata_internal
