#include "api/request_deadline.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <set>
#include <vector>

namespace keyward {
namespace {

int PortOf(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  return -1;
}

std::string PeerKey(const sockaddr_storage& a, socklen_t len) {
  return std::string(reinterpret_cast<const char*>(&a), len);
}

}  // namespace

RequestDeadline::Busy::Busy(RequestDeadline* d, int peer_port) : d_(d), peer_port_(peer_port) {
  std::lock_guard<std::mutex> lock(d_->mu_);
  ++d_->busy_[peer_port_];
}

RequestDeadline::Busy::~Busy() {
  std::lock_guard<std::mutex> lock(d_->mu_);
  if (--d_->busy_[peer_port_] <= 0) d_->busy_.erase(peer_port_);
}

void RequestDeadline::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      SweepOnce(std::chrono::steady_clock::now());
      lock.lock();
      // Once a second: each sweep reads every descriptor of the process (Redis connections too).
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  });
}

void RequestDeadline::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int RequestDeadline::SweepOnce(std::chrono::steady_clock::time_point now) {
  // The descriptors are read without the lock (a server may hold thousands of Redis
  // connections), so handlers marking themselves busy never wait for a sweep.
  struct Seen {
    int fd;
    int peer_port;
    std::string peer;
    unsigned long long rx, tx;
  };
  std::vector<Seen> seen;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long parsed = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || parsed == dirfd(dir)) continue;
    int fd = static_cast<int>(parsed);
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        PortOf(local) != port_ ||
        getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;  // not a connection of this listener
    }
    tcp_info info{};
    socklen_t info_len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len) != 0) continue;
    seen.push_back({fd, PortOf(peer), PeerKey(peer, peer_len), info.tcpi_bytes_received,
                    info.tcpi_bytes_acked});
  }
  closedir(dir);

  int cut = 0;
  std::set<int> live;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Seen& s : seen) {
    live.insert(s.fd);
    Conn& c = conns_[s.fd];
    if (c.peer != s.peer) {
      c = Conn{};
      c.peer = s.peer;
      c.rx = s.rx;
      c.tx = s.tx;
    }
    if (s.tx != c.tx) {
      // The server answered: what arrived so far belonged to answered requests.
      c.tx = s.tx;
      c.rx = s.rx;
      c.pending = false;
    } else if (s.rx != c.rx && !c.pending) {
      c.pending = true;  // a request has started arriving
      c.pending_since = now;
    }
    if (c.pending && !busy_.count(s.peer_port) && now - c.pending_since > limit_) {
      // The descriptor may have been closed and reused since it was read: same peer, same socket.
      sockaddr_storage peer{};
      socklen_t peer_len = sizeof(peer);
      if (getpeername(s.fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0 &&
          PeerKey(peer, peer_len) == s.peer) {
        shutdown(s.fd, SHUT_RDWR);
        ++cut;
      }
      c.pending = false;
    }
  }
  for (auto it = conns_.begin(); it != conns_.end();) {
    it = live.count(it->first) ? std::next(it) : conns_.erase(it);
  }
  return cut;
}

}  // namespace keyward
