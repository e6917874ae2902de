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
#include <cstring>
#include <future>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "crypto/stack_wipe.h"
#include "server/resp_writer.h"
#include "util/metrics.h"

namespace keyward {

namespace {

metrics::CounterFamily& CommandsFamily() {
  static auto& f = metrics::DefaultRegistry().AddCounter(
      "keyward_redis_commands_total",
      "Redis commands received, by cluster and lower-case command (\"unknown\" for any other).",
      {"cluster", "command"});
  return f;
}

metrics::GaugeFamily& ConnectionsFamily() {
  static auto& f = metrics::DefaultRegistry().AddGauge(
      "keyward_redis_connections", "Open Redis client connections, by cluster.", {"cluster"});
  return f;
}

}  // namespace

// One cluster's series, shared by its listener and connections and used on the loop thread only:
// counting a command is an array index and a relaxed atomic add, no lock.
struct RespServer::ClusterMetrics {
  explicit ClusterMetrics(std::string id)
      : cluster_id(std::move(id)),
        connections(ConnectionsFamily().WithLabels({cluster_id})),
        commands(CommandNames().size()) {}
  void Count(size_t command) {
    auto& counter = commands[command];
    if (!counter) counter = CommandsFamily().WithLabels({cluster_id, CommandNames()[command]});
    counter->Inc();
  }

  std::string cluster_id;
  std::shared_ptr<metrics::Gauge> connections;
  std::vector<std::shared_ptr<metrics::Counter>> commands;  // by command id, filled on first use
};

struct RespServer::Listener {
  int fd = -1;
  std::shared_ptr<ClusterEndpoint> endpoint;
  std::shared_ptr<ClusterMetrics> metrics;
  bool paused = false;  // out of descriptors even after shedding: re-armed by the next sweep
};

struct RespServer::Connection {
  int fd = -1;
  std::shared_ptr<ClusterEndpoint> endpoint;
  std::shared_ptr<ClusterMetrics> metrics;
  Session session;
  std::string in;
  std::string out;
  size_t out_offset = 0;
  bool closing = false;  // protocol error or QUIT: flush then close
  bool want_write = false;
  bool paused_for_output = false;  // stopped parsing and reading until the client reads replies
  bool reading = true;             // EPOLLIN is in the epoll interest
  ClientLimitState limit;          // timers and memory (server/connection_limits.h)
};

namespace {

// Listener fds are tagged in epoll data with the high bit so the loop can tell them apart.
constexpr uint64_t kListenerTag = 1ull << 63;
constexpr uint64_t kWakeTag = 1ull << 62;

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
  CommandsFamily();  // listed (with HELP and TYPE) from the start, before any cluster
  ConnectionsFamily();
  s->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  s->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->epoll_fd_ < 0 || s->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("epoll/eventfd: ", strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, s->wake_fd_, &ev);
  auto limits = ConnectionLimits::New(s->options_.clients);
  if (!limits.ok()) return limits.status();
  s->limits_ = std::move(*limits);
  s->thread_ = std::thread([raw = s.get()] { raw->Run(); });
  return s;
}

RespServer::RespServer(RespServerOptions options) : options_(std::move(options)) {}

RespServer::~RespServer() {
  Stop();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void RespServer::Stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
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
  RunOnLoop([this, fd = *fd, endpoint = std::move(endpoint)]() mutable {
    auto l = std::make_unique<Listener>();
    l->fd = fd;
    l->metrics = std::make_shared<ClusterMetrics>(endpoint->cluster_id);
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
  bool found = false;
  RunOnLoop([&] {
    for (auto& l : listeners_) {
      if (l->endpoint->cluster_id != cluster_id) continue;
      l->endpoint->store = store;
      l->endpoint->unavailable_message = unavailable_message;
      found = true;
    }
  });
  if (!found) return absl::NotFoundError(absl::StrCat("cluster ", cluster_id, " is not served"));
  return absl::OkStatus();
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
    // Nothing of this cluster runs any more: its series leave the output.
    CommandsFamily().RemoveWhere(0, cluster_id);
    ConnectionsFamily().RemoveWhere(0, cluster_id);
    WipeStaleStack();  // this loop ran the cluster's reads (see crypto/stack_wipe.h)
  });
}

void RespServer::Run() {
  std::vector<epoll_event> events(256);
  while (!stopping_) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                       limits_->SweepIntervalMs());
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        (void)!read(wake_fd_, &v, sizeof(v));
        DrainTasks();
      } else if (tag & kListenerTag) {
        int fd = static_cast<int>(tag & ~kListenerTag);
        for (auto& l : listeners_) {
          if (l->fd == fd) Accept(*l);
        }
      } else {
        int fd = static_cast<int>(tag);
        if (fd >= static_cast<int>(connections_.size()) || !connections_[fd]) continue;
        Connection& c = *connections_[fd];
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          CloseConnection(fd);
          continue;
        }
        if (events[i].events & EPOLLOUT) Flush(c);
        if (connections_[fd] && (events[i].events & EPOLLIN)) OnReadable(*connections_[fd]);
        if (connections_[fd]) EnforceMemoryCap(*connections_[fd]);
      }
    }
    if (limits_->SweepDue()) SweepTimeouts();
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
      (void)!send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd >= static_cast<int>(connections_.size())) connections_.resize(fd + 1);
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->endpoint = l.endpoint;
    c->metrics = l.metrics;
    c->metrics->connections->Add(1);
    c->session.id = next_client_id_++;
    c->session.peer = limit.peer;
    c->limit = std::move(limit);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(fd);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    connections_[fd] = std::move(c);
    ++open_connections_;
  }
}

void RespServer::OnReadable(Connection& c) {
  char buf[64 * 1024];
  bool eof = false;
  // Parse what we have once this much is buffered: the parser refuses an oversized request from
  // its declared lengths, so an unauthenticated client never gets more than a few KiB buffered.
  size_t read_cap = c.session.authenticated ? options_.limits.max_bulk_bytes + (1 << 20)
                                            : RespLimits::PreAuth().max_request_bytes;
  while (true) {
    ssize_t n = read(c.fd, buf, sizeof(buf));
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      limits_->Touch(&c.limit);
      if (c.in.size() > read_cap) break;  // parse what we have
      continue;
    }
    if (n == 0) eof = true;
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  if (eof) c.closing = true;  // answer what was sent, then close
  Process(c);
}

void RespServer::Process(Connection& c) {
  static const RespLimits kPreAuth = RespLimits::PreAuth();
  size_t pos = 0;
  std::vector<std::string> args;
  std::string error;
  c.paused_for_output = false;
  while (!c.session.close_after_reply && pos < c.in.size()) {
    // Chosen per command: a pipelined command after a successful AUTH gets the full limits.
    bool authed = c.session.authenticated;
    size_t max_out = authed ? options_.max_pending_output : options_.max_pending_output_pre_auth;
    if (c.out.size() - c.out_offset >= max_out) {
      c.paused_for_output = true;
      break;
    }
    RespParser parser(authed ? options_.limits : kPreAuth);
    size_t consumed = 0;
    ParseOutcome r = parser.Parse(std::string_view(c.in).substr(pos), &consumed, &args, &error);
    if (r == ParseOutcome::kNeedMore) break;
    if (r == ParseOutcome::kProtocolError) {
      resp::Error(&c.out, "ERR " + error);
      c.closing = true;
      pos = c.in.size();
      break;
    }
    pos += consumed;
    c.metrics->Count(ExecuteCommand(*c.endpoint, c.session, args, &c.out));
  }
  if (c.session.close_after_reply) c.closing = true;
  c.in.erase(0, pos);
  if (c.in.empty() && c.in.capacity() > (64 << 10)) std::string().swap(c.in);  // give back
  Flush(c);
}

void RespServer::Flush(Connection& c) {
  while (c.out_offset < c.out.size()) {
    ssize_t n = write(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset);
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
    if (c.out.capacity() > (1 << 20)) std::string().swap(c.out);  // a big reply's buffer
    c.out_offset = 0;
    if (c.closing && !c.paused_for_output) {
      CloseConnection(c.fd);
      return;
    }
    if (c.paused_for_output) {
      Process(c);  // the client drained its replies: continue with its queued commands
      return;
    }
  }
  UpdateInterest(c);
}

void RespServer::UpdateInterest(Connection& c) {
  bool want = c.out_offset < c.out.size();
  // A client that does not read its replies is not read either: its input stays in the kernel
  // (TCP pushes back) instead of in our buffers. EPOLLOUT wakes it when it drains.
  bool read = !(c.paused_for_output && want);
  if (want == c.want_write && read == c.reading) return;
  c.want_write = want;
  c.reading = read;
  epoll_event ev{};
  ev.events = (want ? EPOLLOUT : 0u) | (read ? EPOLLIN : 0u);
  ev.data.u64 = static_cast<uint64_t>(c.fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void RespServer::CloseConnection(int fd) {
  if (fd < 0 || fd >= static_cast<int>(connections_.size()) || !connections_[fd]) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  limits_->Release(&connections_[fd]->limit);
  connections_[fd]->metrics->connections->Add(-1);
  connections_[fd].reset();
  --open_connections_;
}

}  // namespace keyward

namespace keyward {

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
    std::optional<std::string> goodbye = limits_->Expired(c->limit, c->session.authenticated);
    if (!goodbye) continue;
    // Best effort, never blocking: the client is closed either way.
    if (!goodbye->empty())
      (void)!send(c->fd, goodbye->data(), goodbye->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    CloseConnection(c->fd);
  }
}

void RespServer::EnforceMemoryCap(Connection& c) {
  if (!limits_->SetMemory(&c.limit, c.in.capacity() + c.out.capacity())) return;
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
