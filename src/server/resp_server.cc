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
  bool paused_for_output = false;  // stopped parsing until the client reads its replies
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
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 1000);
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
      }
    }
  }
  DrainTasks();
}

void RespServer::Accept(Listener& l) {
  while (true) {
    int fd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN or a transient error; epoll will call again
    if (open_connections_ >= options_.max_clients) {
      static constexpr char kFull[] = "-ERR max number of clients reached\r\n";
      (void)!write(fd, kFull, sizeof(kFull) - 1);
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
  while (true) {
    ssize_t n = read(c.fd, buf, sizeof(buf));
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      if (c.in.size() > options_.limits.max_bulk_bytes + (1 << 20)) break;  // parse what we have
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
  RespParser parser(options_.limits);
  size_t pos = 0;
  std::vector<std::string> args;
  std::string error;
  c.paused_for_output = false;
  while (!c.session.close_after_reply && pos < c.in.size()) {
    if (c.out.size() - c.out_offset >= options_.max_pending_output) {
      c.paused_for_output = true;
      break;
    }
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
  Flush(c);
}

void RespServer::Flush(Connection& c) {
  while (c.out_offset < c.out.size()) {
    ssize_t n = write(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset);
    if (n > 0) {
      c.out_offset += static_cast<size_t>(n);
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
  if (want == c.want_write) return;
  c.want_write = want;
  epoll_event ev{};
  ev.events = want ? (EPOLLOUT | EPOLLIN) : EPOLLIN;
  ev.data.u64 = static_cast<uint64_t>(c.fd);
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void RespServer::CloseConnection(int fd) {
  if (fd < 0 || fd >= static_cast<int>(connections_.size()) || !connections_[fd]) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  close(fd);
  connections_[fd]->metrics->connections->Add(-1);
  connections_[fd].reset();
  --open_connections_;
}

}  // namespace keyward
