#include "server/resp_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "crypto/stack_wipe.h"
#include "server/resp_writer.h"
#include "util/metrics.h"

namespace keyward {

struct RespServer::Listener {
  int fd = -1;
  std::shared_ptr<ClusterEndpoint> endpoint;
  std::shared_ptr<RedisClusterMetrics> metrics;
  std::shared_ptr<ClusterExecutor> executor;
  bool paused = false;  // out of descriptors even after shedding: re-armed by the next sweep
};

struct RespServer::Connection {
  int fd = -1;
  uint64_t id = 0;  // = session->id; tells a finished job's connection from a later one on its fd
  std::shared_ptr<ClusterEndpoint> endpoint;
  std::shared_ptr<RedisClusterMetrics> metrics;
  std::shared_ptr<ClusterExecutor> executor;
  // Shared with the batch in flight: only the executor touches it while `busy`.
  std::shared_ptr<Session> session = std::make_shared<Session>();
  std::string in;
  std::string out;
  size_t out_offset = 0;
  bool closing = false;  // protocol error, QUIT or end of input: answer, flush, then close
  bool eof = false;      // the client sent everything it will send
  bool busy = false;     // a batch of this connection is with the executor (or parked)
  // A batch handed back before its end because its replies filled max_pending_output: resubmitted
  // once the client has read them (Flush). The connection stays busy meanwhile.
  std::unique_ptr<RespJob> parked;
  size_t job_bytes = 0;       // the arguments of the batch in flight, counted in the memory cap
  std::string pending_error;  // a protocol error, answered after the batch in flight
  uint32_t events = EPOLLIN;  // what epoll watches for
  bool paused_for_output = false;  // stopped parsing until the client reads its replies
  // session->authenticated as of the last finished batch: the loop's own copy, since the
  // executor may be changing the session while a batch runs. Chooses the parser's limits.
  bool authenticated = false;
  ClientLimitState limit;  // timers and memory (server/connection_limits.h)
  // TLS endpoints only (null otherwise). What the session needs from the socket besides what
  // the connection itself wants: during the handshake, the direction it waits for; afterwards, a
  // read that needs the socket writable or a write that needs it readable (TLS may do either).
  std::unique_ptr<TlsStream> tls;
  uint32_t tls_handshake_events = EPOLLIN;
  bool tls_read_wants_write = false;
  bool tls_write_wants_read = false;
  // The last read found nothing more to hand out (kWantRead, or an empty read-ahead buffer): what
  // OpenSSL still holds is at most part of a record, and the socket's next bytes raise an event.
  // False after a read stopped early (input caps): complete records may wait in OpenSSL.
  bool tls_drained = true;
};

namespace {

// Listener fds are tagged in epoll data with the high bit so the loop can tell them apart.
constexpr uint64_t kListenerTag = 1ull << 63;
constexpr uint64_t kWakeTag = 1ull << 62;
constexpr uint64_t kDoneTag = kWakeTag + 1;
// A connection's epoll data: its fd in the low 32 bits and 30 bits of its id above (below the
// two tag bits), so an event queued for a closed connection never reaches a new one on its fd.
uint64_t ConnectionTag(int fd, uint64_t id) {
  return (id & 0x3fffffffu) << 32 | static_cast<uint32_t>(fd);
}
// A batch holds at most this many commands or (after its first command) input bytes, so parsing
// one client's flood never holds up the loop's other connections for long (the executor's
// rounds cut a batch finer if need be).
constexpr size_t kMaxBatchCommands = 1024;
constexpr size_t kMaxBatchBytes = 256 << 10;
// How long one call of Process may answer a connection's reads from memory on the loop
// (ClusterExecutor::RunInline) before handing the rest to the executor: bounds what one client
// adds to a pass of the loop, as parsing its batch does.
constexpr std::chrono::microseconds kInlineBudget{200};
// OpenSSL's buffers of a TLS connection (a 16 KiB record each way and overhead), counted in the
// memory cap from the start (they are allocated at the first record and kept).
constexpr size_t kTlsBufferBytes = 34 << 10;
// Rounds of reading TLS input OpenSSL already holds before the loop polls the sockets again.
constexpr int kTlsBufferedRounds = 4;
// While a batch runs, read ahead at most this much of what the client pipelines after it.
constexpr size_t kReadAheadWhileBusy = 1 << 20;
// Before AUTH no more than one request may wait: the pre-AUTH limits bound what is buffered.
size_t ReadAheadWhileBusy(bool authenticated) {
  return authenticated ? kReadAheadWhileBusy : RespLimits::PreAuth().max_request_bytes;
}

absl::StatusOr<int> BindListener(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("'", host, "' is not an IPv4 address"));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 511) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", host, ":", port, ": ", strerror(err)));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return fd;
}

int BoundPort(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RespServer>> RespServer::New(RespServerOptions options) {
  std::unique_ptr<RespServer> s(new RespServer(std::move(options)));
  RedisClusterMetrics::Register();  // listed (with HELP and TYPE) from the start
  s->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  s->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  s->done_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->epoll_fd_ < 0 || s->wake_fd_ < 0 || s->done_fd_ < 0) {
    return absl::InternalError(absl::StrCat("epoll/eventfd: ", strerror(errno)));
  }
  for (auto [fd, tag] : {std::pair{s->wake_fd_, kWakeTag}, std::pair{s->done_fd_, kDoneTag}}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  if (!s->options_.tls_cert_file.empty()) {
    auto tls = TlsServerContext::New(s->options_.tls_cert_file, s->options_.tls_key_file);
    if (!tls.ok()) return tls.status();
    s->tls_ = std::move(*tls);
  }
  auto limits = ConnectionLimits::New(s->options_.clients);
  if (!limits.ok()) return limits.status();
  s->limits_ = std::move(*limits);
  s->pool_ = std::make_unique<WorkerPool>(s->options_.workers);
  s->thread_ = std::thread([raw = s.get()] { raw->Run(); });
  return s;
}

RespServer::RespServer(RespServerOptions options) : options_(std::move(options)) {}

RespServer::~RespServer() {
  Stop();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (done_fd_ >= 0) close(done_fd_);
}

void RespServer::Stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  std::map<std::string, std::shared_ptr<ClusterExecutor>> executors;
  {
    std::lock_guard<std::mutex> lock(executors_mu_);
    executors.swap(executors_);
  }
  for (auto& [id, e] : executors) e->Close();
  if (pool_) pool_->Stop();
  for (auto& c : connections_) {
    if (c) close(c->fd);
  }
  connections_.clear();
  for (auto& l : listeners_) close(l->fd);
  listeners_.clear();
}

void RespServer::RunOnLoop(std::function<void()> task) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    task();
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    tasks_.push_back([task = std::move(task), done] {
      task();
      done->set_value();
    });
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (stopping_) return;  // the loop is gone; the task will not run
  fut.wait();
}

void RespServer::DrainTasks() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
}

absl::StatusOr<int> RespServer::AddCluster(std::shared_ptr<ClusterEndpoint> endpoint,
                                           const std::string& host, int port) {
  if (stopping_) return absl::UnavailableError("server is shutting down");
  auto fd = BindListener(host, port);
  if (!fd.ok()) return fd.status();
  int bound = BoundPort(*fd);
  auto metrics = std::make_shared<RedisClusterMetrics>(endpoint->cluster_id);
  auto executor = std::make_shared<ClusterExecutor>(
      *pool_, endpoint, metrics, [this](std::vector<std::unique_ptr<RespJob>> jobs) {
        bool wake;
        {
          std::lock_guard<std::mutex> lock(done_mu_);
          // Jobs already waiting: the loop has a wake-up pending (it reads the eventfd before
          // taking done_) and takes these with them, so no second write (one syscall and one
          // loop pass fewer per round under load).
          wake = done_.empty();
          for (auto& j : jobs) done_.push_back(std::move(j));
        }
        if (wake) {
          uint64_t one = 1;
          (void)!write(done_fd_, &one, sizeof(one));
        }
      });
  {
    std::lock_guard<std::mutex> lock(executors_mu_);
    executors_[endpoint->cluster_id] = executor;
  }
  RunOnLoop([this, fd = *fd, endpoint = std::move(endpoint), metrics = std::move(metrics),
             executor = std::move(executor)]() mutable {
    auto l = std::make_unique<Listener>();
    l->fd = fd;
    l->metrics = std::move(metrics);
    l->executor = std::move(executor);
    l->endpoint = std::move(endpoint);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerTag | static_cast<uint64_t>(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    listeners_.push_back(std::move(l));
  });
  return bound;
}

absl::Status RespServer::SetStore(const std::string& cluster_id,
                                  std::shared_ptr<ClusterStore> store,
                                  const std::string& unavailable_message) {
  std::shared_ptr<ClusterExecutor> executor = FindExecutor(cluster_id);
  if (!executor) return absl::NotFoundError(absl::StrCat("cluster ", cluster_id, " is not served"));
  executor->RunExclusive([&] {
    executor->endpoint()->store = store;
    executor->endpoint()->unavailable_message = unavailable_message;
  });
  // Any worker, and the loop (reads answered from memory there), may have run the old store's
  // reads (see crypto/stack_wipe.h).
  pool_->RunOnEveryWorker(WipeStaleStack);
  RunOnLoop(WipeStaleStack);
  return absl::OkStatus();
}

absl::Status RespServer::ChangePassword(const std::string& cluster_id,
                                        const std::string& password_sha256) {
  std::shared_ptr<ClusterExecutor> executor = FindExecutor(cluster_id);
  if (!executor) return absl::NotFoundError(absl::StrCat("cluster ", cluster_id, " is not served"));
  // First the password (AUTH reads it on the executor), then the connections: one opened in
  // between can only have used the new password.
  executor->RunExclusive([&] { executor->endpoint()->password_sha256 = password_sha256; });
  RunOnLoop([this, cluster_id] {
    for (auto& c : connections_) {
      if (c && c->endpoint->cluster_id == cluster_id) CloseConnection(c->fd);
    }
  });
  return absl::OkStatus();
}

std::shared_ptr<ClusterExecutor> RespServer::FindExecutor(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(executors_mu_);
  auto it = executors_.find(cluster_id);
  return it == executors_.end() ? nullptr : it->second;
}

void RespServer::RemoveCluster(const std::string& cluster_id) {
  RunOnLoop([this, cluster_id] {
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if ((*it)->endpoint->cluster_id == cluster_id) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, (*it)->fd, nullptr);
        close((*it)->fd);
        it = listeners_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& c : connections_) {
      if (c && c->endpoint->cluster_id == cluster_id) CloseConnection(c->fd);
    }
  });
  std::shared_ptr<ClusterExecutor> executor;
  {
    std::lock_guard<std::mutex> lock(executors_mu_);
    auto it = executors_.find(cluster_id);
    if (it != executors_.end()) {
      executor = std::move(it->second);
      executors_.erase(it);
    }
  }
  if (executor) executor->Close();
  // Nothing of this cluster runs any more: its series leave the output, and the workers that
  // ran its reads wipe their dead stack frames (see crypto/stack_wipe.h).
  RedisClusterMetrics::RemoveSeries(cluster_id);
  if (pool_) pool_->RunOnEveryWorker(WipeStaleStack);
  RunOnLoop(WipeStaleStack);
}

void RespServer::Run() {
  std::vector<epoll_event> events(256);
  while (!stopping_) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                       tls_buffered_.empty() ? limits_->SweepIntervalMs() : 0);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        (void)!read(wake_fd_, &v, sizeof(v));
        DrainTasks();
      } else if (tag == kDoneTag) {
        uint64_t v;
        (void)!read(done_fd_, &v, sizeof(v));
        OnJobsDone();
      } else if (tag & kListenerTag) {
        int fd = static_cast<int>(tag & ~kListenerTag);
        for (auto& l : listeners_) {
          if (l->fd == fd) Accept(*l);
        }
      } else {
        int fd = static_cast<int>(tag & 0xffffffffu);
        if (fd >= static_cast<int>(connections_.size()) || !connections_[fd]) continue;
        // An event for a connection closed earlier in this batch whose fd was reused since.
        if (ConnectionTag(fd, connections_[fd]->id) != tag) continue;
        Connection& c = *connections_[fd];
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          CloseConnection(fd);
          continue;
        }
        bool writable = events[i].events & EPOLLOUT, readable = events[i].events & EPOLLIN;
        if (c.tls) {
          if (!c.tls->established()) {
            ContinueHandshake(c);
            continue;
          }
          // The session's own needs: a read waiting for the socket to take a write, or the
          // other way round.
          readable |= writable && c.tls_read_wants_write;
          writable |= readable && c.tls_write_wants_read;
        }
        if (writable) Flush(c);
        if (connections_[fd] && readable) OnReadable(*connections_[fd]);
        if (connections_[fd]) EnforceMemoryCap(*connections_[fd]);
      }
    }
    if (!tls_buffered_.empty()) ReadTlsBuffered();
    if (limits_->SweepDue()) SweepTimeouts();
    SubmitPending();
  }
  DrainTasks();
}

void RespServer::Accept(Listener& l) {
  while (true) {
    sockaddr_in addr{};
    socklen_t addr_len = sizeof(addr);
    int fd =
        accept4(l.fd, reinterpret_cast<sockaddr*>(&addr), &addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Out of descriptors: the connection stays queued and the listener readable, so returning
      // would spin. Shed it through the spare descriptor; if even that fails, stop watching the
      // listener until the next sweep.
      auto shed = limits_->ShedAtFdLimit(l.fd, errno);
      if (shed == ConnectionLimits::FdLimitOutcome::kShed) continue;
      if (shed == ConnectionLimits::FdLimitOutcome::kStuck) {
        l.paused = true;
        epoll_event ev{};
        ev.data.u64 = kListenerTag | static_cast<uint64_t>(l.fd);
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, l.fd, &ev);
      }
      return;
    }
    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
    ClientLimitState limit;
    std::string refusal =
        limits_->Admit(l.endpoint->cluster_id, absl::StrCat(ip, ":", ntohs(addr.sin_port)), &limit);
    if (!refusal.empty()) {
      // A TLS client could not read a plaintext line: it just sees the connection close.
      if (!tls_) (void)!send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    std::unique_ptr<TlsStream> tls;
    if (tls_) {
      tls = TlsStream::New(*tls_, fd);
      if (!tls) {
        limits_->Release(&limit);
        close(fd);
        continue;
      }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd >= static_cast<int>(connections_.size())) connections_.resize(fd + 1);
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->endpoint = l.endpoint;
    c->metrics = l.metrics;
    c->executor = l.executor;
    c->metrics->connections->Add(1);
    c->id = c->session->id = next_client_id_++;
    c->session->peer = limit.peer;
    c->limit = std::move(limit);
    c->tls = std::move(tls);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = ConnectionTag(fd, c->id);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    connections_[fd] = std::move(c);
    ++open_connections_;
  }
}

void RespServer::OnReadable(Connection& c) {
  char buf[64 * 1024];
  // Parse what we have once this much is buffered: the parser refuses an oversized request from
  // its declared lengths, so an unauthenticated client never gets more than a few KiB buffered.
  const size_t read_cap = c.authenticated ? options_.limits.max_bulk_bytes + (1 << 20)
                                          : RespLimits::PreAuth().max_request_bytes;
  while (!c.eof) {
    // While a batch runs, read ahead a little (the next batch), then let TCP push back.
    if (c.busy && c.in.size() >= ReadAheadWhileBusy(c.authenticated)) break;
    ssize_t n;
    if (c.tls) {
      size_t got = 0;
      c.tls_read_wants_write = false;
      TlsIo r = c.tls->Read(buf, sizeof(buf), &got);
      if (r == TlsIo::kFailed) {
        CloseConnection(c.fd);
        return;
      }
      c.tls_drained = r != TlsIo::kDone;
      if (r == TlsIo::kWantRead) break;
      if (r == TlsIo::kWantWrite) {
        c.tls_read_wants_write = true;
        break;
      }
      n = r == TlsIo::kClosed ? 0 : static_cast<ssize_t>(got);
    } else {
      n = read(c.fd, buf, sizeof(buf));
    }
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      limits_->Touch(&c.limit);
      if (c.in.size() > read_cap) break;  // parse what we have
      // A short read drained the socket: no second read just to see EAGAIN (epoll is
      // level-triggered and calls again if more came). TLS hands out a record per read: go on while
      // OpenSSL holds more.
      if (static_cast<size_t>(n) < sizeof(buf)) {
        if (!c.tls) break;
        if (!c.tls->HasBuffered()) {
          c.tls_drained = true;
          break;
        }
      }
      continue;
    }
    if (n == 0) {
      c.eof = true;
      c.closing = true;  // answer what was sent, then close
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  Process(c);
  Flush(c);
}

void RespServer::ContinueHandshake(Connection& c) {
  switch (c.tls->Handshake()) {
    case TlsIo::kDone:
      limits_->Touch(&c.limit);
      // The client may have sent its first command with its last handshake message, and
      // OpenSSL may hold it already: read now rather than wait for an event.
      OnReadable(c);
      return;
    case TlsIo::kWantRead:
      c.tls_handshake_events = EPOLLIN;
      break;
    case TlsIo::kWantWrite:
      c.tls_handshake_events = EPOLLOUT;
      break;
    default:
      // Not TLS (a plaintext client), no common protocol, or the peer went away: nothing is
      // served. The client was counted as one before AUTH all along.
      CloseConnection(c.fd);
      return;
  }
  UpdateInterest(c);
}

void RespServer::ReadTlsBuffered() {
  for (int round = 0; round < kTlsBufferedRounds && !tls_buffered_.empty(); ++round) {
    std::vector<std::pair<int, uint64_t>> ready;
    ready.swap(tls_buffered_);
    for (auto [fd, id] : ready) {
      if (fd >= static_cast<int>(connections_.size()) || !connections_[fd] ||
          connections_[fd]->id != id || connections_[fd]->tls_drained) {
        continue;
      }
      OnReadable(*connections_[fd]);
      if (connections_[fd] && connections_[fd]->id == id) EnforceMemoryCap(*connections_[fd]);
    }
  }
}

void RespServer::Process(Connection& c) {
  if (c.busy) return;
  c.paused_for_output = false;
  if (c.session->close_after_reply) {
    c.in.clear();  // QUIT: nothing after it runs
    c.eof = true;
    return;
  }
  // Before AUTH: small limits on what is parsed and on unread replies, and one command per batch,
  // so the command after a successful AUTH is parsed with the full limits.
  const bool authed = c.authenticated;
  const size_t max_out =
      authed ? options_.max_pending_output : options_.max_pending_output_pre_auth;
  if (c.out.size() - c.out_offset >= max_out) {
    c.paused_for_output = true;  // Flush calls back once the client has read its replies
    return;
  }
  static const RespLimits kPreAuth = RespLimits::PreAuth();
  RespParser parser(authed ? options_.limits : kPreAuth);
  const size_t max_commands = authed ? kMaxBatchCommands : 1;
  // Batches that memory answers whole (server/inline_reads.h) are answered here, within a budget
  // per call; the first one that is not (or the budget's end) goes to the executor.
  const auto inline_deadline = std::chrono::steady_clock::now() + kInlineBudget;
  while (true) {
    std::unique_ptr<RespJob> job = ParseBatch(c, parser, max_commands);
    if (!job) break;
    if (authed && std::chrono::steady_clock::now() < inline_deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
          inline_deadline - std::chrono::steady_clock::now());
      c.executor->RunInline(*job, left);
      if (job->next == job->commands.size()) {
        if (c.out.empty()) {
          c.out.swap(job->out);
        } else {
          c.out += job->out;
        }
        if (c.out.size() - c.out_offset >= max_out) {
          c.paused_for_output = true;  // the rest once the client has read these (Flush)
          return;
        }
        continue;  // the next batch
      }
    }
    c.job_bytes = 0;
    for (size_t i = job->next; i < job->commands.size(); ++i) {
      for (const auto& a : job->commands[i]) c.job_bytes += a.size();
    }
    c.busy = true;
    // Submitted after this pass over the ready connections: one hand-off to the executor for
    // all of them (SubmitPending).
    pending_jobs_.emplace_back(c.executor, std::move(job));
    return;
  }
  if (!c.pending_error.empty()) {
    c.out += c.pending_error;
    c.pending_error.clear();
  }
}

std::unique_ptr<RespJob> RespServer::ParseBatch(Connection& c, RespParser& parser,
                                                size_t max_commands) {
  size_t pos = 0;
  std::string error;
  auto job = std::make_unique<RespJob>();
  while (pos < c.in.size() && job->commands.size() < max_commands &&
         (pos == 0 || pos < kMaxBatchBytes)) {
    size_t consumed = 0;
    std::vector<std::string> args;
    ParseOutcome r = parser.Parse(std::string_view(c.in).substr(pos), &consumed, &args, &error);
    if (r == ParseOutcome::kNeedMore) break;
    if (r == ParseOutcome::kProtocolError) {
      // Answered after the commands before it, then the connection closes.
      resp::Error(&c.pending_error, "ERR " + error);
      c.closing = true;
      c.eof = true;  // read nothing more
      pos = c.in.size();
      break;
    }
    pos += consumed;
    job->commands.push_back(std::move(args));
  }
  c.in.erase(0, pos);
  if (c.in.empty() && c.in.capacity() > (64 << 10)) std::string().swap(c.in);  // give back
  if (job->commands.empty()) return nullptr;
  job->fd = c.fd;
  job->connection_id = c.id;
  job->session = c.session;
  // Allocated here and freed here (OnJobsDone), not across threads; most replies fit.
  job->out.reserve(job->commands.size() * 32);
  job->max_out = options_.max_pending_output;
  return job;
}

void RespServer::SubmitPending() {
  for (size_t i = 0; i < pending_jobs_.size();) {
    ClusterExecutor* executor = pending_jobs_[i].first.get();
    std::vector<std::unique_ptr<RespJob>> jobs;
    for (size_t j = i; j < pending_jobs_.size(); ++j) {
      if (pending_jobs_[j].first.get() == executor && pending_jobs_[j].second) {
        jobs.push_back(std::move(pending_jobs_[j].second));
      }
    }
    executor->SubmitMany(std::move(jobs));
    while (i < pending_jobs_.size() && !pending_jobs_[i].second) ++i;
  }
  pending_jobs_.clear();
}

void RespServer::OnJobsDone() {
  std::vector<std::unique_ptr<RespJob>> jobs;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    jobs.swap(done_);
  }
  for (auto& job : jobs) {
    int fd = job->fd;
    if (fd < 0 || fd >= static_cast<int>(connections_.size()) || !connections_[fd] ||
        connections_[fd]->id != job->connection_id) {
      continue;  // the connection closed meanwhile
    }
    Connection& c = *connections_[fd];
    const uint64_t connection_id = job->connection_id;
    c.authenticated = c.session->authenticated;  // the executor is done with the session
    if (c.out.empty()) {
      c.out.swap(job->out);
    } else {
      c.out += job->out;
    }
    job->out.clear();
    if (job->next < job->commands.size()) {
      c.parked = std::move(job);  // its replies filled the buffer: the rest after Flush
    } else {
      c.busy = false;
      c.job_bytes = 0;
      if (c.session->close_after_reply) c.closing = true;
      Process(c);  // the next batch, or the pending protocol error
    }
    Flush(c);
    if (connections_[fd] && connections_[fd]->id == connection_id) {
      EnforceMemoryCap(*connections_[fd]);
    }
  }
}

void RespServer::Flush(Connection& c) {
  while (c.out_offset < c.out.size()) {
    ssize_t n;
    if (c.tls) {
      size_t wrote = 0;
      c.tls_write_wants_read = false;
      TlsIo r = c.tls->Write(c.out.data() + c.out_offset, c.out.size() - c.out_offset, &wrote);
      if (r == TlsIo::kWantWrite) break;  // EPOLLOUT: output is pending
      if (r == TlsIo::kWantRead) {
        c.tls_write_wants_read = true;
        break;
      }
      if (r != TlsIo::kDone) {
        CloseConnection(c.fd);
        return;
      }
      n = static_cast<ssize_t>(wrote);
    } else {
      n = write(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset);
    }
    if (n > 0) {
      c.out_offset += static_cast<size_t>(n);
      limits_->Touch(&c.limit);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    CloseConnection(c.fd);
    return;
  }
  if (c.out_offset == c.out.size()) {
    c.out.clear();
    c.out_offset = 0;
    if (c.parked) {  // the client read the replies so far: the rest of its batch runs
      pending_jobs_.emplace_back(c.executor, std::move(c.parked));
    }
    if (c.out.capacity() > (1 << 20)) std::string().swap(c.out);  // a big reply's buffer
    if (c.paused_for_output) {
      Process(c);  // the client drained its replies: continue with its queued commands
      if (c.out_offset < c.out.size()) {
        Flush(c);
        return;
      }
    }
    if (c.closing && !c.busy && !c.paused_for_output) {
      CloseConnection(c.fd);
      return;
    }
  }
  UpdateInterest(c);
}

void RespServer::UpdateInterest(Connection& c) {
  uint32_t events = 0;
  // No reading after the end of input, while the client does not read its replies, or beyond
  // the read-ahead while a batch runs (OnJobsDone reads on).
  if (!c.eof && !c.paused_for_output &&
      !(c.busy && c.in.size() >= ReadAheadWhileBusy(c.authenticated))) {
    events |= EPOLLIN;
  }
  if (c.out_offset < c.out.size()) events |= EPOLLOUT;
  if (c.tls) {
    if (!c.tls->established()) {
      events = c.tls_handshake_events;
    } else {
      // Complete records OpenSSL already holds raise no epoll event: read them before the next
      // wait. Not after a drained read: then it holds at most part of a record, and reading
      // again before the rest arrives would spin.
      if ((events & EPOLLIN) && !c.tls_drained && c.tls->HasBuffered()) {
        tls_buffered_.emplace_back(c.fd, c.id);
      }
      if (c.tls_read_wants_write) events |= EPOLLOUT;
      if (c.tls_write_wants_read) events |= EPOLLIN;
    }
  }
  if (events == c.events) return;
  c.events = events;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = ConnectionTag(c.fd, c.id);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void RespServer::CloseConnection(int fd) {
  if (fd < 0 || fd >= static_cast<int>(connections_.size()) || !connections_[fd]) return;
  // Its batch in flight, if any, stops at the next command (ClusterExecutor).
  connections_[fd]->session->cancelled.store(true, std::memory_order_relaxed);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  if (connections_[fd]->tls) {
    connections_[fd]->tls->Shutdown();  // before the socket goes
    connections_[fd]->tls.reset();
  }
  close(fd);
  connections_[fd]->metrics->connections->Add(-1);
  limits_->Release(&connections_[fd]->limit);
  connections_[fd].reset();
  --open_connections_;
}

void RespServer::SweepTimeouts() {
  for (auto& l : listeners_) {
    if (!l->paused) continue;  // out of descriptors at the last accept: try again
    l->paused = false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerTag | static_cast<uint64_t>(l->fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, l->fd, &ev);
  }
  for (auto& c : connections_) {
    if (!c) continue;
    // Not while a batch of it runs: a client waiting for its own FLUSHDB, or for an AUTH queued
    // behind a busy cluster, is not idle.
    if (c->busy) continue;
    std::optional<std::string> goodbye = limits_->Expired(c->limit, c->authenticated);
    if (!goodbye) continue;
    // Best effort, never blocking: the client is closed either way (a batch in flight finishes
    // and its replies are dropped).
    if (!goodbye->empty() && !c->tls) {
      (void)!send(c->fd, goodbye->data(), goodbye->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    } else if (!goodbye->empty() && c->tls->established()) {
      size_t sent = 0;  // one record if the socket takes it; nothing mid-handshake
      (void)c->tls->Write(goodbye->data(), goodbye->size(), &sent);
    }
    CloseConnection(c->fd);
  }
}

void RespServer::EnforceMemoryCap(Connection& c) {
  if (!limits_->SetMemory(&c.limit, c.in.capacity() + c.out.capacity() + c.job_bytes +
                                        (c.tls ? kTlsBufferBytes : 0))) {
    return;
  }
  // Over the cap: close the client holding the most (a linear scan, only when over the cap).
  while (limits_->total_memory() > limits_->options().max_client_memory) {
    Connection* largest = nullptr;
    for (auto& other : connections_) {
      if (other && (!largest || other->limit.memory > largest->limit.memory)) largest = other.get();
    }
    if (!largest || largest->limit.memory == 0) return;
    limits_->LogEviction(largest->limit, largest->limit.memory);
    CloseConnection(largest->fd);
  }
}

}  // namespace keyward
