#pragma once
// The REST API (JSON under /api/v1/) and /healthz, on cpp-httplib's thread pool.
// Every /api/ route needs `Authorization: Bearer <token>`; errors are
// {"error":{"code","message","details"}} with an HTTP status that says what kind of failure.

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "control/cluster_manager.h"

namespace httplib {
class Server;
}

namespace keyward {

struct RestServerOptions {
  std::string host = "127.0.0.1";
  int port = 7070;
  std::string owner_token_sha256;  // raw SHA-256 of the owner token
  size_t max_body_bytes = 1 << 20;
};

class RestServer {
 public:
  static absl::StatusOr<std::unique_ptr<RestServer>> New(RestServerOptions options,
                                                         ClusterManager& clusters);
  ~RestServer();
  int port() const { return port_; }
  // Starts serving on a background thread.
  void Start();
  void Stop();

 private:
  RestServer(RestServerOptions options, ClusterManager& clusters);
  void Routes();

  RestServerOptions options_;
  ClusterManager& clusters_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace keyward
