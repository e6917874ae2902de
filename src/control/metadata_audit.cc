// The SQLite metadata store (sqlite_metadata_store.h): the audit trail.
#include "absl/strings/str_cat.h"
#include "control/sqlite_metadata_store.h"
#include "util/status_macros.h"

namespace keyward::metadata_internal {

absl::Status SqliteMetadataStore::AppendAudit(const AuditEvent& e) {
  return db_->Exec(
      "INSERT INTO audit_events(project_id, at_ms, actor, action, target, key_id, key_version, "
      "result, message) VALUES(?,?,?,?,?,?,?,?,?)",
      {e.project_id, e.at_ms, e.actor, e.action, e.target, e.key_id, e.key_version, e.result,
       e.message});
}

absl::StatusOr<std::vector<AuditEvent>> SqliteMetadataStore::ListAudit(
    const std::string& project_id, const AuditFilter& f, Page page) {
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

}  // namespace keyward::metadata_internal
