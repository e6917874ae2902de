#include "api/rest_routes.h"

namespace keyward::rest {

void AddClusterRoutes(std::vector<Route>& t, const RouteDeps& d) {
  ControlPlane* cp = d.cp;
  MetadataStore* store = d.store;
  auto add = [&](std::string method, std::string path, Handler h) {
    AddRoute(t, std::move(method), std::move(path), std::move(h));
  };
  // Clusters.
  auto create_cluster = [cp, store](Call& c, const std::string& project_id, bool legacy) {
    WithIdempotency(c, *store, [&] {
      auto body = ParseBody(c.body, {{"name", {F::kString, true}},
                                     {"cloud_provider", {F::kString, !legacy}},
                                     {"region", {F::kString, !legacy}},
                                     {"tier", {F::kString, !legacy}},
                                     {"durability", {F::kString, false}},
                                     {"engine", {F::kString, false}},
                                     {"nodes", {F::kInt, false}}});
      if (!c.Check(body)) return;
      ClusterRequest r{
          (*body)["name"],
          Opt<std::string>(*body, "cloud_provider", "aws"),
          Opt<std::string>(*body, "region", "us-east-1"),
          Opt<std::string>(*body, "tier", "dedicated"),
          body->contains("durability") ? std::optional<std::string>((*body)["durability"])
                                       : std::nullopt,
          body->contains("engine") ? std::optional<std::string>((*body)["engine"]) : std::nullopt,
          body->contains("nodes") ? std::optional<int64_t>((*body)["nodes"].get<int64_t>())
                                  : std::nullopt};
      auto created = cp->CreateCluster(c.user, project_id, r);
      if (!c.Check(created)) return;
      json out = ClusterJson(created->cluster, cp->Endpoint(created->cluster));
      out["password"] = created->password;
      c.Json(201, out);
    });
  };
  add("POST", "/api/v1/projects/{project_id}/clusters",
      [create_cluster](Call& c) { create_cluster(c, c.params[0], false); });
  add("GET", "/api/v1/projects/{project_id}/clusters", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    c.List(cp->ListClusters(c.user, c.params[0], *page), *page,
           [cp](const Cluster& k) { return ClusterJson(k, cp->Endpoint(k)); });
  });
  // The walking skeleton's routes: clusters in the organization's default project.
  add("POST", "/api/v1/clusters", [cp, create_cluster](Call& c) {
    auto project = cp->DefaultProjectId();
    if (c.Check(project)) create_cluster(c, *project, true);
  });
  add("GET", "/api/v1/clusters", [cp](Call& c) {
    auto page = c.PageParams();
    auto project = cp->DefaultProjectId();
    if (!c.Check(page) || !c.Check(project)) return;
    c.List(cp->ListClusters(c.user, *project, *page), *page,
           [cp](const Cluster& k) { return ClusterJson(k, cp->Endpoint(k)); });
  });
  auto one_cluster = [cp](Call& c, const absl::StatusOr<Cluster>& r) {
    if (c.Check(r)) c.Json(200, ClusterJson(*r, cp->Endpoint(*r)));
  };
  add("GET", "/api/v1/clusters/{cluster_id}",
      [cp, one_cluster](Call& c) { one_cluster(c, cp->GetCluster(c.user, c.params[0])); });
  add("DELETE", "/api/v1/clusters/{cluster_id}", [cp](Call& c) {
    std::string with =
        c.req.has_param("with_backups") ? c.req.get_param_value("with_backups") : "false";
    if (with != "true" && with != "false") {
      c.Check(absl::StatusOr<int>(absl::InvalidArgumentError(
          "with_backups must be true or false (true also deletes the cluster's backups)")));
      return;
    }
    auto r = cp->DeleteCluster(c.user, c.params[0], with == "true");
    if (!c.Check(r)) return;
    json out = ClusterJson(r->cluster, cp->Endpoint(r->cluster));
    out["backups"] = {{"kept", r->backups_kept},
                      {"deleted", r->backups_deleted},
                      {"message", r->backups_message}};
    c.Json(200, out);
  });
  add("POST", "/api/v1/clusters/{cluster_id}:pause",
      [cp, one_cluster](Call& c) { one_cluster(c, cp->PauseCluster(c.user, c.params[0])); });
  add("POST", "/api/v1/clusters/{cluster_id}:resume",
      [cp, one_cluster](Call& c) { one_cluster(c, cp->ResumeCluster(c.user, c.params[0])); });
  add("POST", "/api/v1/clusters/{cluster_id}:rotate-dictionary-key",
      [cp, one_cluster](Call& c) { one_cluster(c, cp->RotateDictionaryKey(c.user, c.params[0])); });
  add("POST", "/api/v1/clusters/{cluster_id}:reset-password", [cp, store](Call& c) {
    WithIdempotency(c, *store, [&] {
      auto r = cp->ResetClusterPassword(c.user, c.params[0]);
      if (!c.Check(r)) return;
      json out = ClusterJson(r->cluster, cp->Endpoint(r->cluster));
      out["password"] = r->password;
      c.Json(200, out);
    });
  });
  add("POST", "/api/v1/clusters/{cluster_id}:reencrypt", [cp](Call& c) {
    auto r = cp->Reencrypt(c.user, c.params[0]);
    if (c.Check(r)) c.Json(202, ClusterJson(*r, cp->Endpoint(*r)));
  });
  add("POST", "/api/v1/clusters/{cluster_id}:repair", [cp](Call& c) {
    auto body = ParseBody(c.body, {{"accept_data_loss", {F::kBool, true}}});
    if (!c.Check(body)) return;
    auto r = cp->RepairCluster(c.user, c.params[0], (*body)["accept_data_loss"].get<bool>());
    if (!c.Check(r)) return;
    json out = ClusterJson(r->cluster, cp->Endpoint(r->cluster));
    const RepairReport& rep = r->report;
    out["repair"] = {{"method", rep.method},
                     {"summary", rep.Summary()},
                     {"damage", rep.damage},
                     {"last_sequence_kept", rep.last_sequence_kept},
                     {"writes_dropped", rep.writes_dropped},
                     {"records_dropped", rep.records_dropped},
                     {"damaged_stretches", rep.damaged_stretches},
                     {"bytes_dropped", rep.bytes_dropped},
                     {"first_sequence_dropped", rep.first_sequence_dropped},
                     {"last_sequence_dropped", rep.last_sequence_dropped},
                     {"exact", rep.exact},
                     {"files_set_aside", rep.files_set_aside},
                     {"entries_set_aside", rep.entries_set_aside}};
    c.Json(200, out);
  });
  add("PUT", "/api/v1/clusters/{cluster_id}/backup-policy", [cp, one_cluster](Call& c) {
    auto body = ParseBody(c.body, {{"schedule", {F::kString, true}},
                                   {"retention_days", {F::kInt, true}},
                                   {"dual_region", {F::kObject, false}}});
    if (!c.Check(body)) return;
    BackupPolicy p{(*body)["schedule"], (*body)["retention_days"].get<int>(), false, ""};
    if (body->contains("dual_region")) {
      auto d = ParseBody((*body)["dual_region"].dump(),
                         {{"enabled", {F::kBool, true}}, {"secondary_region", {F::kString, false}}},
                         "dual_region.");
      if (!c.Check(d)) return;
      p.dual_region = (*d)["enabled"];
      p.secondary_region = Opt<std::string>(*d, "secondary_region", "");
    }
    one_cluster(c, cp->SetBackupPolicy(c.user, c.params[0], p));
  });
}

}  // namespace keyward::rest
