#pragma once
// Serves every cluster's Redis endpoint from one epoll event loop thread: one listening socket
// per cluster, many pipelined client connections, no thread per connection.
//
// AddCluster/RemoveCluster are thread-safe and may be called from the REST threads; they take
// effect on the loop thread, and RemoveCluster returns only after every connection of that
// cluster is closed (so the caller may then close the store).
//
// Limits on clients before and after AUTH (input sizes, connection counts, timeouts, memory,
// the file descriptor limit) are described in server/connection_limits.h.
//
// Metrics: keyward_redis_commands_total{cluster,command} and keyward_redis_connections{cluster},
// per-cluster atomics updated on the loop thread without a lock; a removed cluster's series go.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/commands.h"
#include "server/connection_limits.h"
#include "server/resp_parser.h"

namespace keyward {

struct RespServerOptions {
  RespLimits limits;  // after AUTH; before it, RespLimits::PreAuth()
  // Connection counts, timeouts and the memory cap (server/connection_limits.h).
  ConnectionLimitOptions clients;
  size_t max_pending_output = 64 << 20;           // stop reading a client until it drains this much
  size_t max_pending_output_pre_auth = 64 << 10;  // the same before AUTH
};

class RespServer {
 public:
  static absl::StatusOr<std::unique_ptr<RespServer>> New(RespServerOptions options);
  ~RespServer();
  RespServer(const RespServer&) = delete;
  RespServer& operator=(const RespServer&) = delete;

  // Binds host:port (port 0 picks a free one) and starts serving `endpoint`. Returns the port.
  absl::StatusOr<int> AddCluster(std::shared_ptr<ClusterEndpoint> endpoint, const std::string& host,
                                 int port);
  void RemoveCluster(const std::string& cluster_id);
  // Replaces the store a listening cluster serves, on the loop thread; returns once no command
  // uses the old store any more. A null store seals the endpoint: it keeps listening and its
  // connections stay open, but every command after AUTH answers `-ERR <unavailable_message>`.
  // NotFound when the cluster has no listener.
  absl::Status SetStore(const std::string& cluster_id, std::shared_ptr<ClusterStore> store,
                        const std::string& unavailable_message);
  void Stop();

 private:
  struct Listener;
  struct Connection;
  struct ClusterMetrics;
  explicit RespServer(RespServerOptions options);
  void Run();
  void RunOnLoop(std::function<void()> task);  // blocks until done
  void DrainTasks();
  void Accept(Listener& l);
  void OnReadable(Connection& c);
  void Process(Connection& c);
  void Flush(Connection& c);
  void UpdateInterest(Connection& c);
  void CloseConnection(int fd);
  // Connection limits (server/connection_limits.h) applied by the loop.
  void SweepTimeouts();                  // closes clients past --auth-timeout / --idle-timeout
  void EnforceMemoryCap(Connection& c);  // re-counts c's buffers; over the cap closes the largest

  RespServerOptions options_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex tasks_mu_;
  std::vector<std::function<void()>> tasks_;
  // Owned by the loop thread.
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Connection>> connections_;  // indexed by fd
  size_t open_connections_ = 0;
  std::unique_ptr<ConnectionLimits> limits_;
  uint64_t next_client_id_ = 1;
};

}  // namespace keyward
