#include "api/rest_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/json_views.h"
#include "api/request_body.h"
#include "api/request_deadline.h"
#include "crypto/random.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/socket_sweep.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr size_t kHttpWorkers = 64;
constexpr size_t kKeepAliveMaxRequests = 1000;
constexpr time_t kKeepAliveIdleSeconds = 15;
// Each read and write of a request or reply: a client that stops sending (or reading) mid-request
// frees its worker after this long, not httplib's default of 5 s per call plus whatever follows.
constexpr time_t kSocketIoSeconds = 5;
constexpr int kListenBacklog = 1024;
// Headers and body of one request must arrive within this (api/request_deadline.h); a 1 MiB body
// needs only 100 KB/s.
constexpr auto kRequestDeadline = std::chrono::seconds(10);

// httplib's default sets SO_REUSEPORT, which lets a second server bind the same port and take
// part of the connections (and their bearer tokens). SO_REUSEADDR alone keeps quick restarts
// (TIME_WAIT) and makes a second listener fail with EADDRINUSE.
void ListenSocketOptions(int sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

std::string CodeName(int http) {
  switch (http) {
    case 400:
      return "invalid_argument";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 429:
      return "rate_limited";
    case 501:
      return "not_implemented";
    case 503:
      return "unavailable";
    default:
      return "internal";
  }
}

void SendError(httplib::Response& res, int http, const std::string& message) {
  res.status = http;
  json body = {{"error",
                {{"code", CodeName(http)},
                 {"message", message},
                 {"details", {{"request_id", res.get_header_value("X-Request-Id")}}}}}};
  res.set_content(body.dump(), "application/json");
}

void SendStatus(httplib::Response& res, const absl::Status& st) {
  int http = HttpStatusFor(st.code());
  if (http == 500) {  // logged in full, answered without internals
    LogError("http.internal_error", std::string(st.message()),
             {{"request_id", res.get_header_value("X-Request-Id")}});
    SendError(res, 500, "internal error; see the server log (request id in details)");
    return;
  }
  SendError(res, http, std::string(st.message()));
}

// One API call in flight: the authenticated user, path parameters and the response.
struct Call {
  const httplib::Request& req;
  httplib::Response& res;
  User user;
  std::vector<std::string> params;

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
  absl::StatusOr<Page> PageParams() const {
    Page page;
    if (req.has_param("page_size")) {
      if (!absl::SimpleAtoi(req.get_param_value("page_size"), &page.limit) || page.limit < 1 ||
          page.limit > 500) {
        return absl::InvalidArgumentError("page_size must be a number from 1 to 500");
      }
    }
    if (req.has_param("page_token")) {
      if (!absl::SimpleAtoi(req.get_param_value("page_token"), &page.offset) || page.offset < 0) {
        return absl::InvalidArgumentError("page_token is not one this server gave out");
      }
    }
    return page;
  }
  template <typename T, typename F>
  void List(const absl::StatusOr<std::vector<T>>& items, const Page& page, F&& view) {
    if (!Check(items)) return;
    json out = json::array();
    for (const auto& i : *items) out.push_back(view(i));
    json body = {{"items", out}};
    if (static_cast<int64_t>(items->size()) == page.limit) {
      body["next_page_token"] = std::to_string(page.offset + page.limit);
    }
    Json(200, body);
  }
};

using Handler = std::function<void(Call&)>;

struct Route {
  RouteSpec spec;
  Handler handler;
};

std::string PathRegex(const std::string& openapi_path) {
  static const std::regex kParam(R"(\{[a-z_]+\})");
  return std::regex_replace(openapi_path, kParam, "([a-z0-9-]{1,64})");
}

// Creates replay their first answer when the same Idempotency-Key comes again from the same
// user. Stored answers never hold a one-time secret: password and token fields are dropped.
void WithIdempotency(Call& call, MetadataStore& store, const std::string& route,
                     const std::function<void()>& run) {
  std::string key = call.req.get_header_value("Idempotency-Key");
  if (key.empty()) {
    run();
    return;
  }
  if (key.size() > 128) {
    SendError(call.res, 400, "Idempotency-Key must be at most 128 characters");
    return;
  }
  auto prior = store.GetIdempotent(call.user.id, key, route);
  if (!call.Check(prior)) return;
  if (*prior) {
    call.res.status = (*prior)->status;
    call.res.set_content((*prior)->body, "application/json");
    call.res.set_header("Idempotent-Replayed", "true");
    return;
  }
  run();
  if (call.res.status < 200 || call.res.status >= 300) return;
  json body = json::parse(call.res.body, nullptr, false);
  if (body.is_discarded()) return;
  for (const char* secret : {"password", "token"}) {
    if (body.contains(secret)) {
      body.erase(secret);
      body["secret_shown_once"] = true;
    }
  }
  store.PutIdempotent(call.user.id, key, route, {call.res.status, body.dump()}).IgnoreError();
}

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

template <typename T>
T Opt(const json& j, const char* field, T fallback) {
  return j.contains(field) ? j[field].get<T>() : fallback;
}

}  // namespace

bool IsLoopbackAddress(std::string_view addr) {
  if (addr.find('\0') != std::string_view::npos) return false;  // inet_pton would stop there
  std::string a(addr);
  in_addr v4{};
  if (inet_pton(AF_INET, a.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, a.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

RestServer::RestServer(RestServerOptions options, ControlPlane& control, MetadataStore& metadata)
    : options_(std::move(options)),
      control_(control),
      metadata_(metadata),
      http_(options_.tls_cert_file.empty()
                ? std::make_unique<httplib::Server>()
                : std::make_unique<httplib::SSLServer>(options_.tls_cert_file.c_str(),
                                                       options_.tls_key_file.c_str())) {}

RestServer::~RestServer() { Stop(); }

absl::StatusOr<std::unique_ptr<RestServer>> RestServer::New(RestServerOptions options,
                                                            ControlPlane& control,
                                                            MetadataStore& metadata) {
  std::unique_ptr<RestServer> s(new RestServer(std::move(options), control, metadata));
  if (!s->http_->is_valid()) {  // SSLServer that could not load the certificate or key
    return absl::InvalidArgumentError(absl::StrCat("cannot serve TLS with --tls-cert ",
                                                   s->options_.tls_cert_file, " and --tls-key ",
                                                   s->options_.tls_key_file));
  }
  s->Register();
  s->http_->set_payload_max_length(s->options_.max_body_bytes);
  // httplib's defaults (8 workers, idle connections closed after 5 s or 5 requests) make clients
  // race the server's close: a client whose event loop stalls past its own idle timer (the
  // server's hint less a second) reuses a connection as it closes and sees EPIPE, not our
  // answer (seen in CI on a loaded machine). Idle connections hold a worker each, hence more.
  s->http_->new_task_queue = [] { return new httplib::ThreadPool(kHttpWorkers); };
  s->http_->set_keep_alive_max_count(kKeepAliveMaxRequests);
  s->http_->set_keep_alive_timeout(kKeepAliveIdleSeconds);
  s->http_->set_read_timeout(kSocketIoSeconds);
  s->http_->set_write_timeout(kSocketIoSeconds);
  s->http_->set_socket_options([raw = s.get()](int sock) {
    ListenSocketOptions(sock);
    raw->listen_fd_ = sock;
  });
  if (s->options_.port == 0) {
    s->port_ = s->http_->bind_to_any_port(s->options_.host);
  } else if (s->http_->bind_to_port(s->options_.host, s->options_.port)) {
    s->port_ = s->options_.port;
  } else {
    s->port_ = -1;
  }
  // httplib listens with a backlog of 5: a burst of connections (a dozen slow clients and a
  // health check) overflowed it, and the dropped SYN came back after the kernel's 1 s retry.
  // listen() again on the bound socket only raises the backlog.
  if (s->port_ > 0 && s->listen_fd_ >= 0) listen(s->listen_fd_, kListenBacklog);
  if (s->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", s->options_.host, ":",
                                               s->options_.port,
                                               " (in use?); pick another with --listen"));
  }
  return s;
}

void RestServer::Start() {
  deadline_ = std::make_unique<RequestDeadline>(port_, kRequestDeadline);
  deadline_->Start();
  thread_ = std::thread([this] { http_->listen_after_bind(); });
}

void RestServer::Stop() {
  if (http_) http_->stop();
  if (!thread_.joinable()) return;
  // Idle keep-alive connections would hold their workers (and this join) for the idle timeout.
  // Swept until the pool is gone: a connection accepted just before stop() is served later.
  std::atomic<bool> joined{false};
  std::thread sweeper([this, &joined] {
    while (!joined.load()) {
      if (port_ > 0) ShutdownConnectionsOnPort(port_, -1);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  thread_.join();
  joined = true;
  sweeper.join();
  if (deadline_) deadline_->Stop();
}

namespace {

using F = FieldType;

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
            {"created_at", b.created_at},
            {"completed_at", b.completed_at},
            {"error", b.error}};
  j["progress"] = b.state == "completed" ? 1.0
                  : b.bytes_total > 0
                      ? static_cast<double>(b.bytes) / static_cast<double>(b.bytes_total)
                      : 0.0;
  return j;
}

// Backups (issue 9); kept in one place so the cluster routes stay as they are.
void AddBackupRoutes(std::vector<Route>& t, ControlPlane* cp) {
  auto add = [&](std::string method, std::string path, Handler h) {
    t.push_back({{std::move(method), std::move(path)}, std::move(h)});
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
  add("POST", "/api/v1/backups/{backup_id}:restore", [cp](Call& c) {
    auto body = ParseBody(c.req.body, {{"name", {FieldType::kString, true}}});
    if (!c.Check(body)) return;
    auto created = cp->RestoreBackup(c.user, c.params[0], (*body)["name"]);
    if (!c.Check(created)) return;
    json out = ClusterJson(created->cluster, cp->Endpoint(created->cluster));
    out["password"] = created->password;
    c.Json(201, out);
  });
}

std::vector<Route> RouteTable(ControlPlane* cp, MetadataStore* store, const std::string* openapi) {
  std::vector<Route> t;
  auto add = [&](std::string method, std::string path, Handler h) {
    t.push_back({{std::move(method), std::move(path)}, std::move(h)});
  };
  add("GET", "/api/v1/openapi.json", [openapi](Call& c) {
    c.res.status = 200;
    c.res.set_content(*openapi, "application/json");
  });

  // Projects.
  add("POST", "/api/v1/projects", [cp, store](Call& c) {
    WithIdempotency(c, *store, "POST /projects", [&] {
      auto body = ParseBody(c.req.body,
                            {{"name", {F::kString, true}}, {"cmek_enabled", {F::kBool, false}}});
      if (!c.Check(body)) return;
      auto p = cp->CreateProject(c.user, (*body)["name"], Opt(*body, "cmek_enabled", false));
      if (c.Check(p)) c.Json(201, ProjectJson(*p));
    });
  });
  add("GET", "/api/v1/projects", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    c.List(cp->ListProjects(c.user, *page), *page, ProjectJson);
  });
  add("GET", "/api/v1/projects/{project_id}", [cp](Call& c) {
    auto p = cp->GetProject(c.user, c.params[0]);
    if (c.Check(p)) c.Json(200, ProjectJson(*p));
  });
  add("PATCH", "/api/v1/projects/{project_id}", [cp](Call& c) {
    auto body =
        ParseBody(c.req.body, {{"name", {F::kString, false}}, {"cmek_enabled", {F::kBool, false}}});
    if (!c.Check(body)) return;
    auto current = cp->GetProject(c.user, c.params[0]);
    if (!c.Check(current)) return;
    if (body->contains("cmek_enabled") &&
        (*body)["cmek_enabled"].get<bool>() != current->cmek_enabled) {
      SendError(c.res, 409,
                current->cmek_enabled
                    ? "CMEK cannot be turned off for a project once it is created; its data stays "
                      "under the customer's key"
                    : "CMEK cannot be enabled for an existing project; create a new project with "
                      "cmek_enabled=true and create its clusters there");
      return;
    }
    if (!body->contains("name")) {
      c.Json(200, ProjectJson(*current));
      return;
    }
    auto p = cp->RenameProject(c.user, c.params[0], (*body)["name"]);
    if (c.Check(p)) c.Json(200, ProjectJson(*p));
  });
  add("POST", "/api/v1/projects/{project_id}/members", [cp, store](Call& c) {
    WithIdempotency(c, *store, "POST /projects/{id}/members", [&] {
      auto body = ParseBody(c.req.body, {{"name", {F::kString, true}},
                                         {"role", {F::kString, true}},
                                         {"token_ttl_seconds", {F::kInt, false}}});
      if (!c.Check(body)) return;
      auto m = cp->AddMember(c.user, c.params[0], (*body)["name"], (*body)["role"],
                             Opt<int64_t>(*body, "token_ttl_seconds", 0));
      if (c.Check(m)) {
        c.Json(201, {{"user_id", m->first.id},
                     {"name", m->first.name},
                     {"role", (*body)["role"]},
                     {"token", m->second}});
      }
    });
  });

  // Encryption keys.
  add("POST", "/api/v1/projects/{project_id}/encryption-keys", [cp, store](Call& c) {
    WithIdempotency(c, *store, "POST /projects/{id}/encryption-keys", [&] {
      auto body = ParseBody(c.req.body, {{"provider", {F::kString, true}},
                                         {"region", {F::kString, true}},
                                         {"azure", {F::kObject, false}},
                                         {"aws", {F::kObject, false}}});
      if (!c.Check(body)) return;
      KeyRequest r{(*body)["provider"], (*body)["region"], body->value("azure", json()),
                   body->value("aws", json())};
      if (r.azure.is_object()) {
        auto a = ParseBody(r.azure.dump(),
                           {{"key_vault_name", {F::kString, false}},
                            {"managed_hsm_name", {F::kString, false}},
                            {"key_name_prefix", {F::kString, true}},
                            {"subscription_id", {F::kString, false}},
                            {"resource_group", {F::kString, false}}},
                           "azure.");
        if (!c.Check(a)) return;
      }
      if (r.aws.is_object()) {
        auto a = ParseBody(r.aws.dump(), {{"key_arn", {F::kString, true}}}, "aws.");
        if (!c.Check(a)) return;
      }
      auto k = cp->CreateKey(c.user, c.params[0], r);
      if (!c.Check(k)) return;
      json out = KeyJson(*k);
      out["setup"] = cp->Instructions(*k);
      c.Json(201, out);
    });
  });
  add("GET", "/api/v1/projects/{project_id}/encryption-keys", [cp](Call& c) {
    auto page = c.PageParams();
    if (!c.Check(page)) return;
    c.List(cp->ListKeys(c.user, c.params[0], *page), *page, KeyJson);
  });
  add("GET", "/api/v1/projects/{project_id}/encryption-keys/{key_id}", [cp](Call& c) {
    auto k = cp->GetKey(c.user, c.params[0], c.params[1]);
    if (!c.Check(k)) return;
    json out = KeyJson(*k);
    out["setup"] = cp->Instructions(*k);
    c.Json(200, out);
  });
  add("PATCH", "/api/v1/projects/{project_id}/encryption-keys/{key_id}", [cp](Call& c) {
    auto body = ParseBody(c.req.body, {{"provider", {F::kString, false}},
                                       {"region", {F::kString, false}},
                                       {"azure", {F::kObject, false}},
                                       {"aws", {F::kObject, false}}});
    if (!c.Check(body)) return;
    KeyRequest r{Opt<std::string>(*body, "provider", ""), Opt<std::string>(*body, "region", ""),
                 body->value("azure", json()), body->value("aws", json())};
    if (r.azure.is_object()) {
      auto a = ParseBody(r.azure.dump(),
                         {{"key_vault_name", {F::kString, false}},
                          {"managed_hsm_name", {F::kString, false}},
                          {"key_name_prefix", {F::kString, false}},
                          {"subscription_id", {F::kString, false}},
                          {"resource_group", {F::kString, false}}},
                         "azure.");
      if (!c.Check(a)) return;
    }
    if (r.aws.is_object()) {
      auto a = ParseBody(r.aws.dump(), {{"key_arn", {F::kString, true}}}, "aws.");
      if (!c.Check(a)) return;
    }
    auto k = cp->UpdateKey(c.user, c.params[0], c.params[1], r);
    if (!c.Check(k)) return;
    json out = KeyJson(*k);
    out["setup"] = cp->Instructions(*k);
    c.Json(200, out);
  });
  add("DELETE", "/api/v1/projects/{project_id}/encryption-keys/{key_id}", [cp](Call& c) {
    auto k = cp->DeleteKey(c.user, c.params[0], c.params[1]);
    if (c.Check(k)) c.Json(200, KeyJson(*k));
  });
  add("POST", "/api/v1/projects/{project_id}/encryption-keys/{key_id}:test", [cp](Call& c) {
    auto t = cp->TestKey(c.user, c.params[0], c.params[1]);
    if (!c.Check(t)) return;
    json out = KeyJson(t->key);
    out["checks"] = ChecksJson(t->checks);
    c.Json(200, out);
  });

  // Clusters.
  auto create_cluster = [cp, store](Call& c, const std::string& project_id, bool legacy) {
    WithIdempotency(c, *store, "POST clusters", [&] {
      auto body = ParseBody(c.req.body, {{"name", {F::kString, true}},
                                         {"cloud_provider", {F::kString, !legacy}},
                                         {"region", {F::kString, !legacy}},
                                         {"tier", {F::kString, !legacy}},
                                         {"durability", {F::kString, false}}});
      if (!c.Check(body)) return;
      ClusterRequest r{(*body)["name"], Opt<std::string>(*body, "cloud_provider", "aws"),
                       Opt<std::string>(*body, "region", "us-east-1"),
                       Opt<std::string>(*body, "tier", "dedicated"),
                       body->contains("durability")
                           ? std::optional<std::string>((*body)["durability"])
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
  add("POST", "/api/v1/clusters/{cluster_id}:reencrypt", [cp](Call& c) {
    auto r = cp->Reencrypt(c.user, c.params[0]);
    if (c.Check(r)) c.Json(202, ClusterJson(*r, cp->Endpoint(*r)));
  });
  add("POST", "/api/v1/clusters/{cluster_id}:repair", [cp](Call& c) {
    auto body = ParseBody(c.req.body, {{"accept_data_loss", {F::kBool, true}}});
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
    auto body = ParseBody(c.req.body, {{"schedule", {F::kString, true}},
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
    int64_t since = 0, until = INT64_MAX;
    if ((c.req.has_param("since_ms") &&
         !absl::SimpleAtoi(c.req.get_param_value("since_ms"), &since)) ||
        (c.req.has_param("until_ms") &&
         !absl::SimpleAtoi(c.req.get_param_value("until_ms"), &until))) {
      SendError(c.res, 400, "since_ms and until_ms must be unix times in milliseconds");
      return;
    }
    c.List(cp->ListAudit(c.user, c.params[0], since, until, *page), *page, AuditJson);
  });
  AddBackupRoutes(t, cp);
  return t;
}

}  // namespace

std::vector<RouteSpec> RestServer::Routes() {
  std::vector<RouteSpec> out = {{"GET", "/healthz"}};
  for (const auto& r : RouteTable(nullptr, nullptr, nullptr)) out.push_back(r.spec);
  return out;
}

// What the request log line needs beyond the request and response: set by the handler on the
// worker thread that answers, read by httplib's logger on the same thread after the answer.
struct RequestLogContext {
  std::chrono::steady_clock::time_point start;
  std::string route;     // the route table's path, e.g. /api/v1/clusters/{cluster_id}
  std::string actor_id;  // the authenticated user's id, never the token
};
thread_local RequestLogContext t_request_log;

void LogRequest(const httplib::Request& req, const httplib::Response& res) {
  const RequestLogContext& ctx = t_request_log;
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ctx.start)
          .count();
  LogFields fields = {{"method", req.method},
                      {"route", ctx.route.empty() ? req.path : ctx.route},
                      {"status", res.status},
                      {"duration_ms", std::round(ms * 10) / 10},
                      {"request_id", res.get_header_value("X-Request-Id")},
                      {"remote", req.remote_addr}};
  if (!ctx.actor_id.empty()) fields.emplace_back("actor_id", ctx.actor_id);
  Log(res.status >= 500 ? LogLevel::kError : LogLevel::kInfo, "http.request",
      absl::StrCat(req.method, " ", req.path, " ", res.status), fields);
}

void RestServer::Register() {
  auto& http = *http_;
  http.set_logger(LogRequest);
  http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    t_request_log = RequestLogContext{std::chrono::steady_clock::now(), "", ""};
    std::string id = req.get_header_value("X-Request-Id");
    static const std::regex kSafe("^[A-Za-z0-9._-]{1,64}$");
    if (!std::regex_match(id, kSafe)) id = RandomHex(8).value_or("0");
    res.set_header("X-Request-Id", id);
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SendError(res, 500, "internal error; see the server log");
      });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      SendError(res, 404, "no route " + req.method + " " + req.path + "; see /api/v1/openapi.json");
    } else if (res.status == 413) {
      SendError(res, 413, "request body too large");
    } else {
      SendError(res, res.status, "request failed");
    }
  });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });

  for (auto& route : RouteTable(&control_, &metadata_, &options_.openapi_json)) {
    bool open = route.spec.path == "/api/v1/openapi.json";
    bool local_open = route.spec.path == "/metrics";  // open to loopback peers only
    httplib::Server::Handler h = [this, open, local_open, handler = route.handler,
                                  path = route.spec.path](const httplib::Request& req,
                                                          httplib::Response& res) {
      t_request_log.route = path;
      // Being answered, so not a slow request: a KMS call may take longer than the deadline.
      std::optional<RequestDeadline::Busy> busy;
      if (deadline_) busy.emplace(deadline_.get(), req.remote_port);
      Call call{req, res, User{}, {}};
      for (size_t i = 1; i < req.matches.size(); ++i) call.params.push_back(req.matches[i]);
      // A proxy on the same host makes every client look local: a forwarded request is not.
      bool local = IsLoopbackAddress(req.remote_addr) && !req.has_header("X-Forwarded-For") &&
                   !req.has_header("Forwarded");
      if (!open && !(local_open && local)) {
        std::string auth = req.get_header_value("Authorization");
        constexpr std::string_view kBearer = "Bearer ";
        std::string token = auth.rfind(kBearer, 0) == 0 ? auth.substr(kBearer.size()) : "";
        auto user = control_.Authenticate(token);
        if (!call.Check(user)) return;
        call.user = *user;
        t_request_log.actor_id = user->id;
      }
      handler(call);
    };
    std::string pattern = PathRegex(route.spec.path);
    const std::string& m = route.spec.method;
    if (m == "GET")
      http.Get(pattern, h);
    else if (m == "POST")
      http.Post(pattern, h);
    else if (m == "PUT")
      http.Put(pattern, h);
    else if (m == "PATCH")
      http.Patch(pattern, h);
    else if (m == "DELETE")
      http.Delete(pattern, h);
  }
}

}  // namespace keyward
