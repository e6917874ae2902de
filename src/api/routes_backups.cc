#include "api/rest_routes.h"

namespace keyward::rest {
namespace {

json BackupJson(const BackupRecord& b) {
  json j = {{"id", b.id},
            {"cluster_id", b.cluster_id},
            {"project_id", b.project_id},
            {"state", b.state},
            {"bytes", b.bytes},
            {"bytes_total", b.bytes_total},
            {"files", b.files},
            {"key_id", b.key_record_id},
            {"kms_key_id", b.key_id},
            {"key_version", b.key_version},
            {"destination", b.destination},
            {"created_at", Rfc3339(b.created_at)},
            {"completed_at", OptionalRfc3339(b.completed_at)},
            {"error", b.error}};
  // The dual-region copy, when one was due (README "Backups").
  if (!b.copy_state.empty()) {
    j["copy"] = {
        {"state", b.copy_state}, {"destination", b.copy_destination}, {"error", b.copy_error}};
  }
  j["progress"] = b.state == "completed" ? 1.0
                  : b.bytes_total > 0
                      ? static_cast<double>(b.bytes) / static_cast<double>(b.bytes_total)
                      : 0.0;
  return j;
}

}  // namespace

void AddBackupRoutes(std::vector<Route>& t, const RouteDeps& d) {
  ControlPlane* cp = d.cp;
  auto add = [&](std::string method, std::string path, Handler h) {
    AddRoute(t, std::move(method), std::move(path), std::move(h));
  };
  add("POST", "/api/v1/clusters/{cluster_id}/backups", [cp](Call& c) {
    auto b = cp->CreateBackup(c.user, c.params[0]);
    if (c.Check(b)) c.Json(202, BackupJson(*b));
  });
  add("GET", "/api/v1/clusters/{cluster_id}/backups", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    c.List(cp->ListBackups(c.user, c.params[0], *page), *page, BackupJson);
  });
  add("GET", "/api/v1/backups/{backup_id}", [cp](Call& c) {
    auto b = cp->GetBackup(c.user, c.params[0]);
    if (c.Check(b)) c.Json(200, BackupJson(*b));
  });
  add("DELETE", "/api/v1/backups/{backup_id}", [cp](Call& c) {
    auto b = cp->DeleteBackup(c.user, c.params[0]);
    if (c.Check(b)) c.Json(200, BackupJson(*b));
  });
  // Idempotent like the creates: a client that lost the answer gets the same cluster back,
  // without the password (never stored; see WithIdempotency).
  add("POST", "/api/v1/backups/{backup_id}:restore", [cp, store = d.store](Call& c) {
    WithIdempotency(c, *store, [&] {
      auto body = ParseBody(
          c.body, {{"name", {FieldType::kString, true}}, {"from_copy", {FieldType::kBool, false}}});
      if (!c.Check(body)) return;
      auto created =
          cp->RestoreBackup(c.user, c.params[0], (*body)["name"], body->value("from_copy", false));
      if (!c.Check(created)) return;
      json out = ClusterJson(created->cluster, cp->Endpoint(created->cluster));
      out["password"] = created->password;
      // Where the backup was read from: its destination, or its dual-region copy (asked for,
      // or because the primary failed: primary_error says why).
      out["restored_from"] = {{"destination", created->source},
                              {"copy", created->from_copy},
                              {"primary_error", created->primary_error}};
      c.Json(201, out);
    });
  });
}

}  // namespace keyward::rest
