#pragma once
// A whole-request deadline for the REST listener. cpp-httplib bounds each read (5 s) but not a
// request: a client sending one header byte every 2 s holds a worker for as long as it likes, so
// enough of them take every worker and /healthz with them. This sweeper looks at the listener's
// connections every second (the process's sockets on its port, as util/socket_sweep does) and
// shuts down any whose request has been arriving for longer than the limit: bytes received since
// the server last sent anything, first seen more than `limit` ago, while no handler is answering
// it. Idle keep-alive connections (nothing received) are left to httplib's idle timeout, and a
// handler that takes long (a KMS call) is never cut: handlers mark their connection busy.
// Thread-safe.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"

namespace keyward {

class RequestDeadline {
 public:
  RequestDeadline(int port, std::chrono::milliseconds limit) : port_(port), limit_(limit) {}
  ~RequestDeadline() { Stop(); }
  RequestDeadline(const RequestDeadline&) = delete;
  RequestDeadline& operator=(const RequestDeadline&) = delete;

  void Start();
  void Stop();

  // While alive, the connection from the peer's `remote_port` is being answered: not cut.
  class Busy {
   public:
    Busy(RequestDeadline* d, int peer_port);
    ~Busy();
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

   private:
    RequestDeadline* d_;
    int peer_port_;
  };

  // One look at every connection; returns how many were cut.
  int SweepOnce(std::chrono::steady_clock::time_point now);

 private:
  struct Conn {
    std::string peer;  // detects a reused descriptor
    unsigned long long rx = 0, tx = 0;
    bool pending = false;
    std::chrono::steady_clock::time_point pending_since;
  };
  const int port_;
  const std::chrono::milliseconds limit_;
  std::mutex mu_;
  std::map<int, int> busy_ ABSL_GUARDED_BY(mu_);    // peer port → handlers running
  std::map<int, Conn> conns_ ABSL_GUARDED_BY(mu_);  // by descriptor
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace keyward
