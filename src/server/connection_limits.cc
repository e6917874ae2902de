#include "server/connection_limits.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "util/log.h"

namespace keyward {
namespace {

int64_t MonotonicNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int OpenSpare() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

// Descriptors kept out of reach of Redis clients: the REST API's connections, the clusters'
// RocksDB files (up to 256 each), the metadata database, the KMS calls.
size_t FdReserve(size_t limit) { return std::max<size_t>(64, limit / 4); }

// Raises the soft RLIMIT_NOFILE toward the hard one (enough for `want`), then caps max_clients
// so clients can never take the descriptors the rest of the server needs.
size_t FitToFdLimit(size_t max_clients) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return max_clients;
  // Enough that max_clients fit beside the reserve (a quarter of the limit).
  rlim_t want = static_cast<rlim_t>((max_clients + 64) * 4 / 3 + 1);
  if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = std::min(want, rl.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  size_t limit = static_cast<size_t>(rl.rlim_cur);
  size_t reserve = FdReserve(limit);
  size_t fitted = limit > reserve + 16 ? limit - reserve : 16;
  if (fitted >= max_clients) return max_clients;
  LogWarn("server.max_clients_lowered",
          absl::StrCat("the file descriptor limit is ", limit, " (ulimit -n): serving at most ",
                       fitted, " Redis clients instead of --max-clients ", max_clients,
                       ", keeping ", limit - fitted,
                       " descriptors for the API and the clusters' files; raise the limit to "
                       "serve more"),
          {{"fd_limit", limit}, {"max_clients", fitted}});
  return fitted;
}

}  // namespace

void LogLimiter::Log(const std::string& line) {
  int64_t now = MonotonicNowMs();
  uint64_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (window_start_ms_ < 0 || now - window_start_ms_ >= interval_ms_) {
      window_start_ms_ = now;
      printed_ = 0;
    }
    if (printed_ >= burst_) {
      ++dropped_;
      return;
    }
    ++printed_;
    dropped = dropped_;
    dropped_ = 0;
  }
  if (dropped == 0) {
    LogWarn("redis.client", line);
  } else {
    LogWarn("redis.client",
            absl::StrCat(line, " (and ", dropped, " more like it since the last such line)"),
            {{"suppressed", dropped}});
  }
}

absl::StatusOr<std::unique_ptr<ConnectionLimits>> ConnectionLimits::New(
    ConnectionLimitOptions options, std::function<int64_t()> now_ms) {
  if (options.max_clients < 1 || options.max_clients_per_cluster < 1) {
    return absl::InvalidArgumentError("client limits must be at least 1");
  }
  if (options.auth_timeout_ms < 1 || options.idle_timeout_ms < 0) {
    return absl::InvalidArgumentError("the AUTH timeout must be positive, the idle timeout >= 0");
  }
  if (options.fit_to_fd_limit) options.max_clients = FitToFdLimit(options.max_clients);
  std::unique_ptr<ConnectionLimits> l(
      new ConnectionLimits(options, now_ms ? std::move(now_ms) : MonotonicNowMs));
  l->spare_fd_ = OpenSpare();
  if (l->spare_fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open /dev/null for the spare descriptor: ", strerror(errno)));
  }
  return l;
}

ConnectionLimits::ConnectionLimits(ConnectionLimitOptions options, std::function<int64_t()> now_ms)
    : options_(options), now_ms_(std::move(now_ms)) {
  // A tenth of the shortest timeout, so a deadline is kept to within 10 %.
  int64_t shortest = options_.auth_timeout_ms;
  if (options_.idle_timeout_ms > 0) shortest = std::min(shortest, options_.idle_timeout_ms);
  sweep_interval_ms_ = static_cast<int>(std::clamp<int64_t>(shortest / 10, 20, 1000));
  next_sweep_ms_ = now_ms_() + sweep_interval_ms_;
}

ConnectionLimits::~ConnectionLimits() {
  if (spare_fd_ >= 0) close(spare_fd_);
}

std::string ConnectionLimits::Admit(const std::string& cluster_id, const std::string& peer,
                                    ClientLimitState* state) {
  if (clients_ >= options_.max_clients) return "-ERR max number of clients reached\r\n";
  size_t& n = per_cluster_[cluster_id];
  if (n >= options_.max_clients_per_cluster) {
    return absl::StrCat("-ERR max number of clients for this cluster reached (",
                        options_.max_clients_per_cluster,
                        "); close idle connections or use a connection pool\r\n");
  }
  ++n;
  ++clients_;
  state->cluster_id = cluster_id;
  state->peer = peer;
  state->connected_ms = state->last_active_ms = now_ms_();
  state->memory = 0;
  return "";
}

void ConnectionLimits::Release(ClientLimitState* state) {
  SetMemory(state, 0);
  auto it = per_cluster_.find(state->cluster_id);
  if (it == per_cluster_.end()) return;  // never admitted, or released already
  if (--it->second == 0) per_cluster_.erase(it);
  --clients_;
  state->cluster_id.clear();
}

size_t ConnectionLimits::ClusterClients(const std::string& cluster_id) const {
  auto it = per_cluster_.find(cluster_id);
  return it == per_cluster_.end() ? 0 : it->second;
}

ConnectionLimits::FdLimitOutcome ConnectionLimits::ShedAtFdLimit(int listen_fd, int err) {
  if (err != EMFILE && err != ENFILE) return FdLimitOutcome::kStuck;  // ENOBUFS, ENOMEM
  if (spare_fd_ < 0) spare_fd_ = OpenSpare();  // given back since the last time?
  if (spare_fd_ < 0) return FdLimitOutcome::kStuck;
  close(spare_fd_);
  spare_fd_ = -1;
  int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  int accept_err = errno;
  if (fd >= 0) {
    static constexpr char kRefused[] = "-ERR server out of file descriptors; try again later\r\n";
    (void)!send(fd, kRefused, sizeof(kRefused) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
    ++shed_;
  }
  spare_fd_ = OpenSpare();  // another thread may take the freed number first: then kStuck next
  if (fd < 0) {
    return accept_err == EAGAIN || accept_err == EWOULDBLOCK ? FdLimitOutcome::kEmpty
                                                             : FdLimitOutcome::kStuck;
  }
  fd_log_.Log(absl::StrCat("out of file descriptors (", strerror(err),
                           "): refused a Redis connection (", shed_,
                           " so far); raise the limit (ulimit -n) or lower --max-clients"));
  return FdLimitOutcome::kShed;
}

bool ConnectionLimits::SweepDue() {
  int64_t now = now_ms_();
  if (now < next_sweep_ms_) return false;
  next_sweep_ms_ = now + sweep_interval_ms_;
  return true;
}

std::optional<std::string> ConnectionLimits::Expired(const ClientLimitState& state,
                                                     bool authenticated) const {
  int64_t now = now_ms_();
  if (!authenticated && now - state.connected_ms >= options_.auth_timeout_ms) {
    return absl::StrCat("-ERR AUTH did not come within ", options_.auth_timeout_ms / 1000.0,
                        " s of connecting (--auth-timeout); closing the connection\r\n");
  }
  if (authenticated && options_.idle_timeout_ms > 0 &&
      now - state.last_active_ms >= options_.idle_timeout_ms) {
    return "";  // Redis closes idle clients without a word; -ERR would confuse a pooled client
  }
  return std::nullopt;
}

bool ConnectionLimits::SetMemory(ClientLimitState* state, size_t bytes) {
  total_memory_ = total_memory_ - state->memory + bytes;
  state->memory = bytes;
  return total_memory_ > options_.max_client_memory;
}

void ConnectionLimits::LogEviction(const ClientLimitState& state, size_t bytes) {
  memory_log_.Log(absl::StrCat("cluster ", state.cluster_id, ": closed the client at ", state.peer,
                               " holding ", bytes,
                               " bytes of buffers: all clients together were over "
                               "--max-client-memory ",
                               options_.max_client_memory));
}

void LogAuthFailure(absl::string_view cluster_id, absl::string_view peer, int failures) {
  // Every failure of a few guessing clients; a flood of them is summarised.
  static LogLimiter* limiter = new LogLimiter(1000, 20);
  limiter->Log(absl::StrCat("cluster ", cluster_id, ": failed AUTH from ",
                            peer.empty() ? "unknown peer" : peer, " (", failures,
                            " on this connection)"));
}

}  // namespace keyward
