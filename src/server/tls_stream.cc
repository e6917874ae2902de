#include "server/tls_stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <climits>

#include "absl/strings/str_cat.h"

namespace keyward {
namespace {

// The first OpenSSL error's reason, for messages (never key bytes: reasons are fixed texts).
std::string OpenSslReason() {
  unsigned long e = ERR_peek_last_error();
  const char* reason = e ? ERR_reason_error_string(e) : nullptr;
  std::string out = reason ? reason : "unknown OpenSSL error";
  ERR_clear_error();
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<TlsServerContext>> TlsServerContext::New(
    const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return absl::InternalError("cannot create a TLS context: " + OpenSslReason());
  std::shared_ptr<TlsServerContext> out(new TlsServerContext(ctx));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // No renegotiation (a client could make the server redo expensive handshakes at will), no
  // resumption state to keep; a peer closing without close_notify is an ordinary end of input,
  // as a plaintext FIN is (Redis clients rarely send one).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // Partial writes: the loop's output buffer is written a record at a time and may grow or move
  // between attempts. Buffers are kept, not released after each record (SSL_MODE_RELEASE_BUFFERS):
  // a malloc and free of 16 KiB per read and per write cost more than their memory, which the
  // connection limits count anyway (kTlsBufferBytes in resp_server.cc).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read-ahead: one read(2) takes every record that has arrived, not a header then a body.
  SSL_CTX_set_read_ahead(ctx, 1);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot use the cluster TLS certificate ", cert_file, ": ", OpenSslReason()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot use the cluster TLS key ", key_file, ": ", OpenSslReason()));
    }
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(key_file, " is not the private key of the certificate in ", cert_file));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(key_file, " is not the private key of the certificate in ", cert_file));
  }
  return out;
}

TlsServerContext::~TlsServerContext() { SSL_CTX_free(ctx_); }

std::unique_ptr<TlsStream> TlsStream::New(const TlsServerContext& ctx, int fd) {
  SSL* ssl = SSL_new(ctx.get());
  if (!ssl) {
    ERR_clear_error();
    return nullptr;
  }
  std::unique_ptr<TlsStream> s(new TlsStream(ssl));
  if (SSL_set_fd(ssl, fd) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return s;
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

TlsIo TlsStream::Outcome(int ret, TlsIo blocked) {
  int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return TlsIo::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return TlsIo::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      return TlsIo::kClosed;
    case SSL_ERROR_SYSCALL:
      // errno is cleared before every call (see Read, Write, Handshake): an EAGAIN left by an
      // earlier system call must not make a dead connection look merely blocked, to be polled
      // forever.
      if (errno == EINTR || errno == EAGAIN) {
        ERR_clear_error();
        return blocked;
      }
      [[fallthrough]];
    default:
      // The loop thread's error queue must not keep this connection's errors for the next call.
      ERR_clear_error();
      failed_ = true;
      return TlsIo::kFailed;
  }
}

TlsIo TlsStream::Handshake() {
  if (established_) return TlsIo::kDone;
  if (failed_) return TlsIo::kFailed;
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    established_ = true;
    return TlsIo::kDone;
  }
  return Outcome(r, TlsIo::kWantRead);
}

TlsIo TlsStream::Read(char* buf, size_t cap, size_t* n) {
  *n = 0;
  if (failed_) return TlsIo::kFailed;
  ERR_clear_error();
  errno = 0;
  int r = SSL_read(ssl_, buf, static_cast<int>(cap > INT_MAX ? INT_MAX : cap));
  if (r > 0) {
    *n = static_cast<size_t>(r);
    return TlsIo::kDone;
  }
  return Outcome(r, TlsIo::kWantRead);
}

TlsIo TlsStream::Write(const char* data, size_t len, size_t* n) {
  *n = 0;
  if (failed_) return TlsIo::kFailed;
  ERR_clear_error();
  errno = 0;
  int r = SSL_write(ssl_, data, static_cast<int>(len > (1u << 30) ? (1u << 30) : len));
  if (r > 0) {
    *n = static_cast<size_t>(r);
    return TlsIo::kDone;
  }
  return Outcome(r, TlsIo::kWantWrite);
}

bool TlsStream::HasBuffered() const { return SSL_has_pending(ssl_) == 1; }

void TlsStream::Shutdown() {
  if (!established_ || failed_) return;
  ERR_clear_error();
  (void)SSL_shutdown(ssl_);  // non-blocking: whatever the socket takes now
  ERR_clear_error();
}

}  // namespace keyward
