#pragma once
// What the REST server's route files share: one API call in flight (Call), the route table's
// rows, the error answers, and the Idempotency-Key handling. Routes are grouped by resource:
// routes_projects.cc (projects, members, tokens), routes_keys.cc, routes_clusters.cc,
// routes_backups.cc and routes_ops.cc (OpenAPI document, /metrics, audit events).

#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/json_views.h"
#include "api/request_body.h"
#include "api/rest_server.h"
#include "control/control_plane.h"

namespace keyward::rest {

using nlohmann::json;
using F = FieldType;

int HttpStatusFor(absl::StatusCode code);
// {"error":{"code","message","details":{"request_id"}}} with status `http`.
void SendError(httplib::Response& res, int http, const std::string& message);
// The status's HTTP code and message; a 500 is logged in full and answered without internals.
void SendStatus(httplib::Response& res, const absl::Status& st);

// One API call in flight: the authenticated user, path parameters and the response.
struct Call {
  const httplib::Request& req;
  httplib::Response& res;
  User user;
  std::vector<std::string> params;
  std::string body;  // the request body; "" when none was sent (no Content-Length)

  void Json(int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }
  // Answers with `value` or the error; returns whether it was ok.
  template <typename T>
  bool Check(const absl::StatusOr<T>& v) {
    if (!v.ok()) SendStatus(res, v.status());
    return v.ok();
  }
  // page_size and page_token of a list request. Page tokens are opaque: an offset signed for
  // this path with a key of this server process (a tampered or foreign token is a 400).
  absl::StatusOr<Page> PageParams() const;
  std::string NextPageToken(int64_t offset) const;
  template <typename T, typename F>
  void List(const absl::StatusOr<std::vector<T>>& items, const Page& page, F&& view) {
    if (!Check(items)) return;
    json out = json::array();
    for (const auto& i : *items) out.push_back(view(i));
    json body = {{"items", out}};
    if (static_cast<int64_t>(items->size()) == page.limit) {
      body["next_page_token"] = NextPageToken(page.offset + page.limit);
    }
    Json(200, body);
  }
};

using Handler = std::function<void(Call&)>;

struct Route {
  RouteSpec spec;
  Handler handler;
};

// What handlers reach: the control plane, the metadata store (idempotency records, /metrics)
// and the OpenAPI document. All null when the table is built only to list its routes.
struct RouteDeps {
  ControlPlane* cp = nullptr;
  MetadataStore* store = nullptr;
  const std::string* openapi = nullptr;
};

// Appends one row to a route table.
inline void AddRoute(std::vector<Route>& t, std::string method, std::string path, Handler h) {
  t.push_back({{std::move(method), std::move(path)}, std::move(h)});
}

// The path regex cpp-httplib matches for an OpenAPI path: each {param} one captured segment.
std::string PathRegex(const std::string& openapi_path);

// Creates (and restores) honour an Idempotency-Key header, scoped per caller and route (method
// and path). The key is claimed in the metadata store before `run` (a concurrent duplicate waits
// for the first answer, or gets 409 after a while); the same key with a different body is a 422;
// a 2xx answer is stored and replayed. Stored answers never hold a one-time secret: password and
// token fields are dropped and "secret_shown_once": true is set instead.
void WithIdempotency(Call& call, MetadataStore& store, const std::function<void()>& run);

template <typename T>
T Opt(const json& j, const char* field, T fallback) {
  return j.contains(field) ? j[field].get<T>() : fallback;
}

void AddProjectRoutes(std::vector<Route>& t, const RouteDeps& d);
void AddKeyRoutes(std::vector<Route>& t, const RouteDeps& d);
void AddClusterRoutes(std::vector<Route>& t, const RouteDeps& d);
void AddBackupRoutes(std::vector<Route>& t, const RouteDeps& d);
void AddOpsRoutes(std::vector<Route>& t, const RouteDeps& d);

// Every route, in registration order.
std::vector<Route> RouteTable(const RouteDeps& d);

}  // namespace keyward::rest
