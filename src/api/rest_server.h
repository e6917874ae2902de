#pragma once
// The REST API (JSON under /api/v1/, OpenAPI document at /api/v1/openapi.json) and /healthz, on
// cpp-httplib's thread pool. Every /api/ route except the OpenAPI document needs
// `Authorization: Bearer <token>`. Errors are {"error":{"code","message","details"}}; every
// answer carries an X-Request-Id. Creates honour an Idempotency-Key header; lists page with
// page_size/page_token.
// GET / and /console/* serve the web console (console/console_server.h), a client of this API.
// GET /metrics answers Prometheus text (format 0.0.4); it needs no token from a loopback peer
// (a local agent scrapes it), and the usual bearer token from any other address.

#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "control/control_plane.h"

namespace httplib {
class Server;
}

namespace keyward {

class RequestDeadline;

struct RestServerOptions {
  std::string host = "127.0.0.1";
  int port = 7070;
  size_t max_body_bytes = 1 << 20;
  std::string openapi_json;  // served at /api/v1/openapi.json
  // Both set: HTTPS only (PEM files; checked by CheckServerTlsFiles before). Both empty: HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// One row of the route table: what the OpenAPI document must describe.
struct RouteSpec {
  std::string method;
  std::string path;  // OpenAPI form, e.g. /api/v1/clusters/{cluster_id}:pause
};

// Whether `addr` (a peer address as cpp-httplib reports it) is a loopback address: 127.0.0.0/8,
// ::1 or ::ffff:127.0.0.0/104. Anything else, unparsable or empty included, is not (fail closed).
bool IsLoopbackAddress(std::string_view addr);

class RestServer {
 public:
  static absl::StatusOr<std::unique_ptr<RestServer>> New(RestServerOptions options,
                                                         ControlPlane& control,
                                                         MetadataStore& metadata);
  ~RestServer();
  int port() const { return port_; }
  void Start();  // serves on a background thread
  void Stop();
  // The routes this server really has.
  static std::vector<RouteSpec> Routes();

 private:
  RestServer(RestServerOptions options, ControlPlane& control, MetadataStore& metadata);
  void Register();

  RestServerOptions options_;
  ControlPlane& control_;
  MetadataStore& metadata_;  // idempotency records
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  int listen_fd_ = -1;  // httplib's listening socket, seen in its socket-options hook
  std::unique_ptr<RequestDeadline> deadline_;  // set in Start, before any handler runs
};

}  // namespace keyward
