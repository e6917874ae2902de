// The SQLite metadata store (sqlite_metadata_store.h): projects and their members.
#include "absl/strings/str_cat.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward::metadata_internal {

absl::StatusOr<std::vector<Member>> SqliteMetadataStore::ListMembers(const std::string& project_id,
                                                                     Page page) {
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

absl::StatusOr<bool> SqliteMetadataStore::ChangeMemberRole(const std::string& project_id,
                                                           const std::string& user_id,
                                                           const std::string& from,
                                                           const std::string& to) {
  return ExecChanged(
      absl::StrCat("UPDATE project_members SET role=? WHERE project_id=? AND user_id=? AND "
                   "role=? AND (? = 'project_owner' OR ",
                   kNotLastOwner, ")"),
      {to, project_id, user_id, from, to, project_id});
}

absl::StatusOr<bool> SqliteMetadataStore::RemoveMember(const std::string& project_id,
                                                       const std::string& user_id,
                                                       const std::string& role) {
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

absl::Status SqliteMetadataStore::CreateProject(const Project& p, const std::string& owner_user_id,
                                                const std::optional<EncryptionKey>& escrow_key) {
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

absl::StatusOr<std::optional<Project>> SqliteMetadataStore::GetProject(const std::string& id) {
  std::optional<Project> out;
  RETURN_IF_ERROR(db_->Query(absl::StrCat("SELECT ", kProjectCols, " FROM projects WHERE id=?"),
                             {id}, [&](const SqlRow& r) { out = ProjectRow(r); }));
  return out;
}

absl::StatusOr<std::vector<Project>> SqliteMetadataStore::ListProjects(
    const std::string& org_id, const std::optional<std::string>& member, Page page) {
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
  RETURN_IF_ERROR(db_->Query(sql, params, [&](const SqlRow& r) { out.push_back(ProjectRow(r)); }));
  return out;
}

absl::Status SqliteMetadataStore::RenameProject(const std::string& id, const std::string& name) {
  absl::Status st = db_->Exec("UPDATE projects SET name=? WHERE id=?", {name, id});
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(absl::StrCat("a project named '", name, "' already exists"));
  }
  return st;
}

absl::StatusOr<std::string> SqliteMetadataStore::ProjectRole(const std::string& project_id,
                                                             const std::string& user_id) {
  std::string role;
  RETURN_IF_ERROR(db_->Query("SELECT role FROM project_members WHERE project_id=? AND user_id=?",
                             {project_id, user_id}, [&](const SqlRow& r) { role = r.Text(0); }));
  return role;
}

absl::Status SqliteMetadataStore::AddMember(const std::string& project_id, const User& user,
                                            const std::string& role, const TokenGrant& token) {
  return db_->Transaction([&]() -> absl::Status {
    RETURN_IF_ERROR(InsertUserAndToken(user, token));
    return db_->Exec("INSERT INTO project_members VALUES(?,?,?)", {project_id, user.id, role});
  });
}

}  // namespace keyward::metadata_internal
