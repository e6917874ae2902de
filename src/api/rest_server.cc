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
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/request_deadline.h"
#include "api/rest_routes.h"
#include "console/console_server.h"
#include "crypto/random.h"
#include "util/log.h"
#include "util/socket_sweep.h"

namespace keyward {
namespace {

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
  if (!s->options_.tls_cert_file.empty() && s->http_->is_valid()) {
    // httplib allows TLS 1.1; keyward's API speaks 1.2 and 1.3 only, whatever openssl.cnf says.
    SSL_CTX_set_min_proto_version(static_cast<httplib::SSLServer&>(*s->http_).ssl_context(),
                                  TLS1_2_VERSION);
  }
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

std::vector<RouteSpec> RestServer::Routes() {
  std::vector<RouteSpec> out = {{"GET", "/healthz"}};
  for (const auto& r : rest::RouteTable({})) out.push_back(r.spec);
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
        rest::SendError(res, 500, "internal error; see the server log");
      });
  // Which methods each known path answers, from the route table: a wrong method is a 405
  // naming them in Allow, not a 404.
  auto table = rest::RouteTable({&control_, &metadata_, &options_.openapi_json});
  auto allowed = std::make_shared<std::vector<std::pair<std::regex, std::string>>>();
  allowed->push_back({std::regex("/healthz"), "GET"});
  for (const auto& route : table) {
    allowed->push_back({std::regex(rest::PathRegex(route.spec.path)), route.spec.method});
  }
  http.set_error_handler([allowed](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      std::set<std::string> methods;
      for (const auto& [re, method] : *allowed) {
        if (std::regex_match(req.path, re)) methods.insert(method);
      }
      if (!methods.empty()) {
        std::string allow = absl::StrJoin(methods, ", ");
        res.set_header("Allow", allow);
        rest::SendError(res, 405,
                        absl::StrCat(req.method, " is not allowed on ", req.path,
                                     "; allowed: ", allow, " (see /api/v1/openapi.json)"));
        return;
      }
      rest::SendError(res, 404,
                      "no route " + req.method + " " + req.path + "; see /api/v1/openapi.json");
    } else if (res.status == 413) {
      rest::SendError(res, 413, "request body too large");
    } else {
      rest::SendError(res, res.status, "request failed");
    }
  });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  RegisterConsoleRoutes(http);  // GET / and /console/...: the web console

  for (auto& route : table) {
    bool open = route.spec.path == "/api/v1/openapi.json";
    bool local_open = route.spec.path == "/metrics";  // open to loopback peers only
    auto serve = [this, open, local_open, handler = route.handler, path = route.spec.path](
                     const httplib::Request& req, httplib::Response& res, std::string body) {
      t_request_log.route = path;
      // Being answered, so not a slow request: a KMS call may take longer than the deadline.
      std::optional<RequestDeadline::Busy> busy;
      if (deadline_) busy.emplace(deadline_.get(), req.remote_port);
      rest::Call call{req, res, User{}, {}, std::move(body)};
      for (size_t i = 1; i < req.matches.size(); ++i) call.params.push_back(req.matches[i]);
      // A proxy on the same host makes every client look local: a forwarded request is not.
      bool local = IsLoopbackAddress(req.remote_addr) && !req.has_header("X-Forwarded-For") &&
                   !req.has_header("Forwarded");
      if (!open && !(local_open && local)) {
        std::string auth = req.get_header_value("Authorization");
        constexpr std::string_view kBearer = "Bearer ";
        std::string token = auth.rfind(kBearer, 0) == 0 ? auth.substr(kBearer.size()) : "";
        auto user = control_.Authenticate(token);
        if (!user.ok() && absl::IsUnauthenticated(user.status())) {
          // RFC 6750: the scheme the client must use, and whether the token it sent was bad.
          res.set_header("WWW-Authenticate",
                         token.empty() ? "Bearer realm=\"keyward\""
                                       : "Bearer realm=\"keyward\", error=\"invalid_token\"");
        }
        if (!call.Check(user)) return;
        call.user = *user;
        t_request_log.actor_id = user->id;
      }
      handler(call);
    };
    std::string pattern = rest::PathRegex(route.spec.path);
    const std::string& m = route.spec.method;
    if (m == "GET") {
      http.Get(pattern, [serve](const httplib::Request& req, httplib::Response& res) {
        serve(req, res, "");
      });
      continue;
    }
    // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3):
    // httplib's own reader waits for one until the socket closes, and a body-less
    // `POST …:pause` failed. With a content reader the body is read only when announced.
    httplib::Server::HandlerWithContentReader h = [serve](const httplib::Request& req,
                                                          httplib::Response& res,
                                                          const httplib::ContentReader& reader) {
      std::string body;
      if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
        bool read = reader([&](const char* data, size_t n) {
          body.append(data, n);
          return true;
        });
        if (!read) {
          if (res.status < 400) res.status = 400;  // 413 when over the limit; the error handler
          return;                                  // writes the body
        }
      }
      serve(req, res, std::move(body));
    };
    if (m == "POST")
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
