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
#include "server/resp_server_internal.h"
#include "util/metrics.h"

namespace keyward {

namespace {

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

using namespace resp_server_internal;  // NOLINT(google-build-using-namespace): this class's parts

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

}  // namespace keyward
