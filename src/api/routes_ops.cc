#include <map>

#include "absl/strings/numbers.h"
#include "api/rest_routes.h"
#include "util/metrics.h"

namespace keyward::rest {
namespace {

// keyward_clusters{state}: counted from the metadata store at scrape time, every known state
// listed (0 when none) so a dashboard's series never vanish.
absl::StatusOr<metrics::FamilySnapshot> ClustersByState(MetadataStore& store) {
  std::map<std::string, int64_t> by_state;
  for (const char* s : {"creating", "available", "paused", "inaccessible", "degraded", "failed",
                        "deleting", "deleted"}) {
    by_state[s] = 0;
  }
  for (Page page{0, 1000};; page.offset += page.limit) {
    auto clusters = store.ListClusters("", page);
    if (!clusters.ok()) return clusters.status();
    for (const auto& c : *clusters) ++by_state[c.state];
    if (static_cast<int64_t>(clusters->size()) < page.limit) break;
  }
  metrics::FamilySnapshot f{"keyward_clusters", "Clusters by state.", "gauge", {}};
  for (const auto& [state, n] : by_state) {
    f.samples.push_back({"", {{"state", state}}, static_cast<double>(n)});
  }
  return f;
}

// The audit list's filters (see AuditFilter): each a query parameter, all optional.
absl::StatusOr<AuditFilter> AuditFilterParams(const httplib::Request& req) {
  AuditFilter f;
  if ((req.has_param("since_ms") &&
       !absl::SimpleAtoi(req.get_param_value("since_ms"), &f.since_ms)) ||
      (req.has_param("until_ms") &&
       !absl::SimpleAtoi(req.get_param_value("until_ms"), &f.until_ms))) {
    return absl::InvalidArgumentError("since_ms and until_ms must be unix times in milliseconds");
  }
  if (f.since_ms > f.until_ms) {
    return absl::InvalidArgumentError("since_ms is after until_ms; swap them");
  }
  for (auto [name, field] : {std::pair<const char*, std::string*>{"cluster_id", &f.cluster_id},
                             {"key_id", &f.key_id},
                             {"actor", &f.actor},
                             {"action", &f.action}}) {
    if (!req.has_param(name)) continue;
    *field = req.get_param_value(name);
    if (field->empty() || field->size() > 200) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be 1 to 200 characters (leave it out to match every event)"));
    }
  }
  if (req.has_param("order")) {
    std::string order = req.get_param_value("order");
    if (order != "oldest" && order != "newest") {
      return absl::InvalidArgumentError("order must be oldest (the default) or newest");
    }
    f.newest_first = order == "newest";
  }
  return f;
}

}  // namespace

void AddOpsRoutes(std::vector<Route>& t, const RouteDeps& d) {
  ControlPlane* cp = d.cp;
  MetadataStore* store = d.store;
  const std::string* openapi = d.openapi;
  auto add = [&](std::string method, std::string path, Handler h) {
    AddRoute(t, std::move(method), std::move(path), std::move(h));
  };
  add("GET", "/api/v1/openapi.json", [openapi](Call& c) {
    c.res.status = 200;
    c.res.set_content(*openapi, "application/json");
  });

  add("GET", "/metrics", [store](Call& c) {
    // The series name every cluster of every organization: over the network only an
    // organization owner reads them (a loopback scraper is let in without a token).
    if (!c.user.id.empty() && c.user.org_role != "owner") {
      SendStatus(c.res, absl::PermissionDeniedError(
                            "only an organization owner may read /metrics (it names every "
                            "cluster); scrape it from the server's own host, or with an "
                            "owner's token"));
      return;
    }
    auto clusters = ClustersByState(*store);
    if (!c.Check(clusters)) return;
    c.res.status = 200;
    c.res.set_content(metrics::RenderPrometheusText({*clusters}),
                      "text/plain; version=0.0.4; charset=utf-8");
  });

  add("GET", "/api/v1/projects/{project_id}/audit-events", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    auto filter = AuditFilterParams(c.req);
    if (!c.Check(filter)) return;
    c.List(cp->ListAudit(c.user, c.params[0], *filter, *page), *page, AuditJson);
  });
}

}  // namespace keyward::rest
