// RespServer: accepting clients (admission, the fd limit) and the limits applied to them on the
// loop (timeouts, the client memory cap), and closing a connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/resp_server.h"
#include "server/resp_server_internal.h"

namespace keyward {

using namespace resp_server_internal;  // NOLINT(google-build-using-namespace): this class's parts

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
