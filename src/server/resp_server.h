#pragma once
// Serves every cluster's Redis endpoint. Network I/O runs on one epoll event-loop thread (accept,
// read, parse, write; one listening socket per cluster, many pipelined client connections, no
// thread per connection). Commands never run there: the loop hands each connection's parsed
// batch of commands to its cluster's serial executor (server/cluster_executor.h), which runs them
// in order on a fixed worker pool, group-commits their writes, and hands the replies back to the
// loop. A connection has at most one batch in flight, so its replies stay in order; a cluster's
// commands never run concurrently, so read-modify-write commands stay atomic; one cluster's slow
// command (SAVE, KEYS, FLUSHDB) holds at most one worker, never the loop or another cluster.
//
// AddCluster/RemoveCluster/SetStore are thread-safe and may be called from the REST threads (never
// from the loop or a worker). RemoveCluster returns only after every connection of that cluster
// is closed and no command of it runs or will run (so the caller may then close the store).
//
// Limits on clients before and after AUTH (input sizes, connection counts, timeouts, memory,
// the file descriptor limit) are described in server/connection_limits.h.
//
// TLS: with a certificate in the options every endpoint speaks TLS only (server/tls_stream.h):
// the handshake runs non-blocking on the loop and counts as time before AUTH (a client stalling
// in it is closed at --auth-timeout like one that never sends AUTH); plaintext endpoints take
// none of these paths.
//
// Metrics: keyward_redis_commands_total{cluster,command}, keyward_redis_connections{cluster} and
// keyward_wal_syncs_total{cluster}; a removed cluster's series go.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/cluster_executor.h"
#include "server/commands.h"
#include "server/connection_limits.h"
#include "server/resp_parser.h"
#include "server/tls_stream.h"
#include "server/worker_pool.h"

namespace keyward {

struct RespServerOptions {
  RespLimits limits;  // after AUTH; before it, RespLimits::PreAuth()
  // Connection counts, timeouts and the memory cap (server/connection_limits.h).
  ConnectionLimitOptions clients;
  size_t max_pending_output = 64 << 20;           // stop reading a client until it drains this much
  size_t max_pending_output_pre_auth = 64 << 10;  // the same before AUTH
  size_t workers = 0;                             // threads running commands; 0: see WorkerPool
  // Both set: every endpoint speaks TLS 1.2+ with this PEM certificate chain and key.
  std::string tls_cert_file;
  std::string tls_key_file;
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
  // Replaces the store a listening cluster serves, on its executor; returns once no command
  // uses the old store any more (and the workers' stale stack frames are wiped). A null store seals
  // the endpoint: it keeps listening and its connections stay open, but every command after AUTH
  // answers `-ERR <unavailable_message>`. NotFound when the cluster has no listener.
  absl::Status SetStore(const std::string& cluster_id, std::shared_ptr<ClusterStore> store,
                        const std::string& unavailable_message);
  // Replaces the cluster's password (raw SHA-256) on its executor, then closes every open
  // connection to it: nobody stays in with the old password. NotFound when it has no listener.
  absl::Status ChangePassword(const std::string& cluster_id, const std::string& password_sha256);
  void Stop();
  // Endpoints speak TLS (options' certificate).
  bool tls() const { return tls_ != nullptr; }

 private:
  struct Listener;
  struct Connection;
  explicit RespServer(RespServerOptions options);
  void Run();
  void RunOnLoop(std::function<void()> task);  // blocks until done
  void DrainTasks();
  void Accept(Listener& l);
  void OnReadable(Connection& c);
  // TLS: drives the handshake; once done, the connection reads and writes like any other.
  void ContinueHandshake(Connection& c);
  // TLS connections whose input OpenSSL already holds (no epoll event will come): read now.
  void ReadTlsBuffered();
  // Parses what the connection sent into a batch for its cluster's executor (one at a time).
  void Process(Connection& c);
  // The next batch of c's parsed commands (c.in loses them), or null when none is complete.
  std::unique_ptr<RespJob> ParseBatch(Connection& c, RespParser& parser, size_t max_commands);
  // Finished batches from the workers: their replies go out, the next batch goes in.
  void OnJobsDone();
  void SubmitPending();
  void Flush(Connection& c);
  void UpdateInterest(Connection& c);
  void CloseConnection(int fd);
  // Connection limits (server/connection_limits.h) applied by the loop.
  void SweepTimeouts();                  // closes clients past --auth-timeout / --idle-timeout
  void EnforceMemoryCap(Connection& c);  // re-counts c's buffers; over the cap closes the largest
  std::shared_ptr<ClusterExecutor> FindExecutor(const std::string& cluster_id);

  RespServerOptions options_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int done_fd_ = -1;  // eventfd: the workers finished jobs
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex tasks_mu_;
  std::vector<std::function<void()>> tasks_;
  std::unique_ptr<WorkerPool> pool_;
  std::mutex done_mu_;
  std::vector<std::unique_ptr<RespJob>> done_ ABSL_GUARDED_BY(done_mu_);
  std::mutex executors_mu_;
  std::map<std::string, std::shared_ptr<ClusterExecutor>> executors_ ABSL_GUARDED_BY(executors_mu_);
  // Owned by the loop thread.
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Batches parsed in this pass of the loop, handed to their executors at its end.
  std::vector<std::pair<std::shared_ptr<ClusterExecutor>, std::unique_ptr<RespJob>>> pending_jobs_;
  std::vector<std::unique_ptr<Connection>> connections_;  // indexed by fd
  size_t open_connections_ = 0;
  std::unique_ptr<ConnectionLimits> limits_;
  uint64_t next_client_id_ = 1;
  std::shared_ptr<TlsServerContext> tls_;  // null: plaintext endpoints
  // (fd, id) of TLS connections to read again before the next epoll_wait (ReadTlsBuffered).
  std::vector<std::pair<int, uint64_t>> tls_buffered_;
};

}  // namespace keyward
