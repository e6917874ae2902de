// The non-blocking TLS stream the event loop drives: a handshake that waits for the client
// (kWantRead) instead of blocking, writes larger than the socket takes (kWantWrite, then the rest
// from a moved buffer), several records read out of OpenSSL's read-ahead (HasBuffered), a
// plaintext client refused, and a certificate with the wrong key refused at New.
#include "server/tls_stream.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "crypto/tls_certificates.h"

namespace keyward {
namespace {

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (std::filesystem::temp_directory_path() / "kw-tlss-XXXXXX").string();
    dir_ = mkdtemp(t.data());
    auto files = EnsureSelfSignedTls(dir_ + "/tls", {"127.0.0.1", "localhost"});
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *files;
    auto ctx = TlsServerContext::New(files_.cert, files_.key);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    server_ctx_ = *ctx;
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
    // Small socket buffers, so a write of a few hundred KiB surely fills them.
    int small = 16 << 10;
    for (int fd : fds_) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    ASSERT_EQ(SSL_CTX_load_verify_locations(client_ctx_, files_.ca_cert.c_str(), nullptr), 1);
    SSL_CTX_set_verify(client_ctx_, SSL_VERIFY_PEER, nullptr);
    client_ = SSL_new(client_ctx_);
    SSL_set_fd(client_, fds_[1]);
    SSL_set_connect_state(client_);
    SSL_set1_host(client_, "localhost");
    server_ = TlsStream::New(*server_ctx_, fds_[0]);
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    server_.reset();
    if (client_) SSL_free(client_);
    if (client_ctx_) SSL_CTX_free(client_ctx_);
    close(fds_[0]);
    close(fds_[1]);
    std::filesystem::remove_all(dir_);
  }

  // Both ends step the handshake until done; neither ever blocks.
  void Handshake() {
    for (int i = 0; i < 100 && !server_->established(); ++i) {
      SSL_do_handshake(client_);
      TlsIo r = server_->Handshake();
      ASSERT_NE(r, TlsIo::kFailed);
    }
    ASSERT_TRUE(server_->established());
    ASSERT_EQ(SSL_do_handshake(client_), 1);
  }
  std::string ClientReadAll() {
    std::string out;
    char buf[16384];
    int n;
    while ((n = SSL_read(client_, buf, sizeof buf)) > 0) out.append(buf, n);
    ERR_clear_error();
    return out;
  }

  std::string dir_;
  TlsFiles files_;
  std::shared_ptr<TlsServerContext> server_ctx_;
  int fds_[2] = {-1, -1};
  SSL_CTX* client_ctx_ = nullptr;
  SSL* client_ = nullptr;
  std::unique_ptr<TlsStream> server_;
};

TEST_F(TlsStreamTest, HandshakeWaitsForTheClientWithoutBlocking) {
  EXPECT_EQ(server_->Handshake(), TlsIo::kWantRead);  // nothing sent yet
  EXPECT_FALSE(server_->established());
  Handshake();
  EXPECT_GE(SSL_version(client_), TLS1_2_VERSION);
}

TEST_F(TlsStreamTest, ALargeWriteGoesOutInPartsFromAMovedBuffer) {
  Handshake();
  std::string payload(512 << 10, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  std::string pending = payload;  // what the loop's output buffer still holds
  std::string received;
  bool saw_want_write = false;
  for (int i = 0; i < 10000 && !pending.empty(); ++i) {
    size_t n = 0;
    TlsIo r = server_->Write(pending.data(), pending.size(), &n);
    ASSERT_TRUE(r == TlsIo::kDone || r == TlsIo::kWantWrite) << static_cast<int>(r);
    if (r == TlsIo::kWantWrite) {
      saw_want_write = true;
      received += ClientReadAll();
      // The loop's buffer may be reallocated (it grows as replies are appended) before the retry.
      std::string moved = pending + "";
      pending.swap(moved);
      continue;
    }
    pending.erase(0, n);
  }
  received += ClientReadAll();
  EXPECT_TRUE(saw_want_write);
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(received, payload);
}

TEST_F(TlsStreamTest, RecordsHeldInReadAheadAreReportedAsBuffered) {
  Handshake();
  for (const char* cmd :
       {"*1\r\n$4\r\nPING\r\n", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "*1\r\n$4\r\nQUIT\r\n"}) {
    ASSERT_GT(SSL_write(client_, cmd, static_cast<int>(strlen(cmd))), 0);  // a record each
  }
  std::string got;
  char buf[64];
  size_t n = 0;
  ASSERT_EQ(server_->Read(buf, sizeof buf, &n), TlsIo::kDone);
  got.append(buf, n);
  // One record per read; the other two were taken off the socket with it: no epoll event will
  // announce them, so the loop must see that OpenSSL holds them.
  EXPECT_TRUE(server_->HasBuffered());
  while (server_->HasBuffered()) {
    ASSERT_EQ(server_->Read(buf, sizeof buf, &n), TlsIo::kDone);
    got.append(buf, n);
  }
  EXPECT_EQ(got, "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nQUIT\r\n");
  EXPECT_EQ(server_->Read(buf, sizeof buf, &n), TlsIo::kWantRead);
  // The client goes away without close_notify: an ordinary end of input.
  SSL_free(client_);
  client_ = nullptr;
  shutdown(fds_[1], SHUT_RDWR);
  EXPECT_EQ(server_->Read(buf, sizeof buf, &n), TlsIo::kClosed);
}

TEST_F(TlsStreamTest, APlaintextClientFailsTheHandshake) {
  const char ping[] = "*1\r\n$4\r\nPING\r\n";
  ASSERT_EQ(write(fds_[1], ping, sizeof ping - 1), static_cast<ssize_t>(sizeof ping - 1));
  EXPECT_EQ(server_->Handshake(), TlsIo::kFailed);
  EXPECT_FALSE(server_->established());
  char buf[8];
  size_t n = 0;
  EXPECT_EQ(server_->Read(buf, sizeof buf, &n), TlsIo::kFailed);
  server_->Shutdown();  // no close_notify after a failure, and no crash
}

TEST(TlsServerContext, RefusesAKeyThatIsNotTheCertificates) {
  std::string t = (std::filesystem::temp_directory_path() / "kw-tlsk-XXXXXX").string();
  std::string dir = mkdtemp(t.data());
  auto a = EnsureSelfSignedTls(dir + "/a", {"127.0.0.1"});
  auto b = EnsureSelfSignedTls(dir + "/b", {"127.0.0.1"});
  ASSERT_TRUE(a.ok() && b.ok());
  auto ctx = TlsServerContext::New(a->cert, b->key);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("is not the private key of the certificate"),
            std::string::npos)
      << ctx.status();
  EXPECT_EQ(ctx.status().message().find("BEGIN"), std::string::npos);
  auto missing = TlsServerContext::New(dir + "/none.pem", a->key);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("none.pem"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// A client gone mid-handshake ends the stream whatever errno an earlier system call left behind:
// a stale EAGAIN once made such a connection look merely blocked, to be polled for ever.
TEST_F(TlsStreamTest, PeerGoneMidHandshakeFailsDespiteStaleErrno) {
  SSL_do_handshake(client_);  // the ClientHello
  ERR_clear_error();
  ASSERT_EQ(shutdown(fds_[1], SHUT_WR), 0);
  TlsIo r = TlsIo::kWantRead;
  for (int i = 0; i < 10 && (r == TlsIo::kWantRead || r == TlsIo::kWantWrite); ++i) {
    errno = EAGAIN;
    r = server_->Handshake();
  }
  EXPECT_TRUE(r == TlsIo::kFailed || r == TlsIo::kClosed) << static_cast<int>(r);
}

}  // namespace
}  // namespace keyward
