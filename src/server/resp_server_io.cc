// RespServer: a connection's reads and writes on the loop, plain or TLS (handshake, records
// OpenSSL holds, a read that needs the socket writable and the other way round), and what epoll
// watches for.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "server/resp_server.h"
#include "server/resp_server_internal.h"

namespace keyward {

using namespace resp_server_internal;  // NOLINT(google-build-using-namespace): this class's parts

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

}  // namespace keyward
