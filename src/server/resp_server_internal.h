#pragma once
// Internals of RespServer shared by its source files (resp_server.cc: lifecycle, clusters and the
// event loop; resp_server_accept.cc: accepting and client limits; resp_server_io.cc: connection
// reads and writes, TLS included; resp_server_dispatch.cc: parsing batches and handing them to
// the cluster executors). Only those files include this.

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "server/resp_server.h"

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

namespace resp_server_internal {

// Listener fds are tagged in epoll data with the high bit so the loop can tell them apart.
constexpr uint64_t kListenerTag = 1ull << 63;
constexpr uint64_t kWakeTag = 1ull << 62;
constexpr uint64_t kDoneTag = kWakeTag + 1;
// A connection's epoll data: its fd in the low 32 bits and 30 bits of its id above (below the
// two tag bits), so an event queued for a closed connection never reaches a new one on its fd.
inline uint64_t ConnectionTag(int fd, uint64_t id) {
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
inline size_t ReadAheadWhileBusy(bool authenticated) {
  return authenticated ? kReadAheadWhileBusy : RespLimits::PreAuth().max_request_bytes;
}

}  // namespace resp_server_internal

}  // namespace keyward
