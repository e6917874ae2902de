#pragma once
// The limits a Redis client is held to, before and after AUTH, kept apart from the event loop
// that enforces them (server/resp_server.cc calls in at accept, read, flush, close and on a
// periodic sweep):
//  - admission: at most max_clients connections in all and max_clients_per_cluster per cluster,
//    so one tenant cannot take every connection; max_clients is also fitted under the process's
//    file descriptor limit, keeping descriptors for the REST API and the clusters' files;
//  - the file descriptor limit itself: a spare descriptor (/dev/null) is held from the start, so
//    when accept fails with EMFILE/ENFILE the loop can free it, accept the pending connection,
//    refuse it with an -ERR line and close it. Without this a level-triggered listener stays
//    readable forever and the loop spins at 100 % CPU;
//  - timers: AUTH must come within auth_timeout_ms of connecting, and (when idle_timeout_ms > 0)
//    an authenticated client silent for idle_timeout_ms is closed. One sweep over the connections
//    every SweepIntervalMs() (the loop's epoll_wait timeout): no thread or timer per connection;
//  - memory: the input and output buffers of all clients together stay under max_client_memory.
//    Over it, the client holding the most is closed (like Redis's maxmemory-clients) rather than
//    pausing reads everywhere: a pause would let one tenant's flood or slow reader stall every
//    other tenant, while the largest client is the one that caused it.
// Not thread-safe: one instance per event loop, used on the loop thread only (LogLimiter is the
// exception, see below).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace keyward {

struct ConnectionLimitOptions {
  size_t max_clients = 10000;
  size_t max_clients_per_cluster = 1000;
  size_t max_client_memory = size_t{1} << 30;  // input + output buffers of every client
  int64_t auth_timeout_ms = 10000;
  int64_t idle_timeout_ms = 0;  // 0: authenticated clients may stay idle forever (like Redis)
  // Fit max_clients under RLIMIT_NOFILE (raising the soft limit toward the hard one first).
  bool fit_to_fd_limit = true;
};

// Prints lines to stderr, at most `burst` per interval; the next printed line says how many were
// dropped meanwhile. Thread-safe (AUTH failures are logged from wherever commands run).
class LogLimiter {
 public:
  explicit LogLimiter(int64_t interval_ms = 1000, int burst = 1)
      : interval_ms_(interval_ms), burst_(burst) {}
  void Log(const std::string& line);

 private:
  const int64_t interval_ms_;
  const int burst_;
  std::mutex mu_;
  int64_t window_start_ms_ ABSL_GUARDED_BY(mu_) = -1;
  int printed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// What the limits keep per connection; lives in the loop's connection struct.
struct ClientLimitState {
  std::string cluster_id;  // set by Admit
  std::string peer;        // "ip:port", for logs
  int64_t connected_ms = 0;
  int64_t last_active_ms = 0;
  size_t memory = 0;  // buffer bytes last reported by SetMemory
};

class ConnectionLimits {
 public:
  static absl::StatusOr<std::unique_ptr<ConnectionLimits>> New(
      ConnectionLimitOptions options, std::function<int64_t()> now_ms = nullptr);
  ~ConnectionLimits();
  ConnectionLimits(const ConnectionLimits&) = delete;
  ConnectionLimits& operator=(const ConnectionLimits&) = delete;

  // After fitting to the descriptor limit.
  size_t max_clients() const { return options_.max_clients; }
  const ConnectionLimitOptions& options() const { return options_; }

  // Counts a new connection of `cluster_id` in, or returns the RESP error line to send before
  // closing it (the server or the cluster is full). Empty means admitted; Release when closed.
  std::string Admit(const std::string& cluster_id, const std::string& peer,
                    ClientLimitState* state);
  void Release(ClientLimitState* state);
  size_t ClusterClients(const std::string& cluster_id) const;

  // accept() on `listen_fd` failed with `err`. For EMFILE/ENFILE: frees the spare descriptor,
  // accepts the pending connection, refuses it, closes it, takes the spare back (logged, at most
  // once a second). kShed: one connection was taken off the queue, try accept again; kEmpty:
  // nothing was pending; kStuck: no descriptor could be had even so (or `err` is something
  // else this cannot help with) — stop watching the listener until the next sweep.
  enum class FdLimitOutcome { kShed, kEmpty, kStuck };
  FdLimitOutcome ShedAtFdLimit(int listen_fd, int err);
  uint64_t shed_connections() const { return shed_; }

  // Timers. Touch on every read or write that moved bytes.
  void Touch(ClientLimitState* state) { state->last_active_ms = now_ms_(); }
  int SweepIntervalMs() const { return sweep_interval_ms_; }
  // True at most once per SweepIntervalMs(); then call Expired() on every connection.
  bool SweepDue();
  // nullopt if the connection may stay; else close it after sending the line (may be empty).
  std::optional<std::string> Expired(const ClientLimitState& state, bool authenticated) const;

  // Memory: report a connection's buffer bytes after it changed. True when all clients together
  // are now over max_client_memory: the caller closes the largest (and reports 0 for it).
  bool SetMemory(ClientLimitState* state, size_t bytes);
  size_t total_memory() const { return total_memory_; }
  // Logs (rate-limited) that the client holding `bytes` was closed for the memory cap.
  void LogEviction(const ClientLimitState& state, size_t bytes);

 private:
  ConnectionLimits(ConnectionLimitOptions options, std::function<int64_t()> now_ms);

  ConnectionLimitOptions options_;
  std::function<int64_t()> now_ms_;
  int sweep_interval_ms_ = 1000;
  int64_t next_sweep_ms_ = 0;
  int spare_fd_ = -1;
  uint64_t shed_ = 0;
  size_t clients_ = 0;
  size_t total_memory_ = 0;
  std::unordered_map<std::string, size_t> per_cluster_;
  LogLimiter fd_log_;
  LogLimiter memory_log_;
};

// Log line for a failed AUTH: the cluster and the peer, never what was sent.
void LogAuthFailure(absl::string_view cluster_id, absl::string_view peer, int failures);

}  // namespace keyward
