#pragma once
// TLS for the Redis endpoints (server/resp_server.h), driven by its epoll loop. Sockets are
// non-blocking, so every call may answer "again once the socket is readable" (kWantRead) or
// "writable" (kWantWrite) — TLS may need either direction for a read or a write — and the loop
// asks epoll for that. No thread, no blocking call, no plaintext fallback: a client that does not
// speak TLS fails the handshake and is closed without a byte of RESP.
//
// TlsServerContext: the certificate chain and key (checked to match at New), TLS 1.2 at least,
// no renegotiation, no session tickets, no client certificates. Immutable after New; shared by
// every listener of one RespServer.
// TlsStream: one accepted connection; used by the loop thread only.

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace keyward {

class TlsServerContext {
 public:
  // Errors name the file and what is wrong with it, never key bytes.
  static absl::StatusOr<std::shared_ptr<TlsServerContext>> New(const std::string& cert_file,
                                                               const std::string& key_file);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsServerContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

enum class TlsIo {
  kDone,       // progress: the handshake finished, or *n bytes moved
  kWantRead,   // call again once the socket is readable
  kWantWrite,  // call again once the socket is writable
  kClosed,     // the peer closed (close_notify or end of stream): no more input
  kFailed,     // handshake or protocol failure, or a socket error: close the connection
};

class TlsStream {
 public:
  // Server side of `fd` (accepted, non-blocking); null when OpenSSL cannot allocate it.
  static std::unique_ptr<TlsStream> New(const TlsServerContext& ctx, int fd);
  // Frees the session; call Shutdown first for a close_notify. Does not close fd.
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  bool established() const { return established_; }
  TlsIo Handshake();
  // Up to `cap` decrypted bytes into buf.
  TlsIo Read(char* buf, size_t cap, size_t* n);
  // Encrypts and sends up to `len` bytes (one record or more). After kWantRead/kWantWrite, call
  // again with the same bytes at the front of `data` (the buffer may have moved and grown).
  TlsIo Write(const char* data, size_t len, size_t* n);
  // Input OpenSSL has already taken off the socket (read-ahead) but not handed out: no epoll
  // event will announce it, so the loop reads again while this is true.
  bool HasBuffered() const;
  // Best effort close_notify, never blocking; nothing after a failure (OpenSSL forbids it).
  void Shutdown();

 private:
  explicit TlsStream(SSL* ssl) : ssl_(ssl) {}
  // `blocked`: what a socket without data (or room) for the call means for it (kWantRead for a
  // read or the handshake, kWantWrite for a write).
  TlsIo Outcome(int ret, TlsIo blocked);
  SSL* ssl_;
  bool established_ = false;
  bool failed_ = false;
};

}  // namespace keyward
