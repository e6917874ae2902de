#include "api/request_deadline.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace keyward {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A listener on a free loopback port with one accepted connection: `server` is this process's
// end, which the sweeper looks at; `client` plays the remote side.
struct Connection {
  int listener = -1, server = -1, client = -1, port = 0, client_port = 0;
  Connection() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(listen(listener, 4), 0);
    getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    client = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    server = accept(listener, nullptr, nullptr);
    sockaddr_in c{};
    len = sizeof(c);
    getsockname(client, reinterpret_cast<sockaddr*>(&c), &len);
    client_port = ntohs(c.sin_port);
  }
  ~Connection() {
    close(client);
    close(server);
    close(listener);
  }
  void ClientSends() {
    ASSERT_EQ(write(client, "x", 1), 1);
    std::this_thread::sleep_for(milliseconds(20));  // reaches the server's counters
  }
  void ServerAnswers() {
    ASSERT_EQ(write(server, "y", 1), 1);
    std::this_thread::sleep_for(milliseconds(20));  // and is acknowledged
  }
  bool ServerShutDown() {
    char c;
    return recv(client, &c, 1, MSG_DONTWAIT) == 0;  // end of file: the server shut it down
  }
};

TEST(RequestDeadlineTest, CutsARequestThatKeepsArriving) {
  Connection conn;
  RequestDeadline d(conn.port, milliseconds(1000));
  auto t0 = steady_clock::now();
  EXPECT_EQ(d.SweepOnce(t0), 0);
  conn.ClientSends();
  EXPECT_EQ(d.SweepOnce(t0 + milliseconds(100)), 0);  // a request started here
  conn.ClientSends();
  EXPECT_EQ(d.SweepOnce(t0 + milliseconds(900)), 0);
  EXPECT_EQ(d.SweepOnce(t0 + milliseconds(1200)), 1);
  EXPECT_TRUE(conn.ServerShutDown());
}

TEST(RequestDeadlineTest, IdleAndAnsweredConnectionsAreKept) {
  Connection conn;
  RequestDeadline d(conn.port, milliseconds(1000));
  auto t0 = steady_clock::now();
  EXPECT_EQ(d.SweepOnce(t0), 0);
  EXPECT_EQ(d.SweepOnce(t0 + milliseconds(5000)), 0);  // idle: httplib's idle timeout's business
  conn.ClientSends();
  EXPECT_EQ(d.SweepOnce(t0 + milliseconds(5100)), 0);
  conn.ServerAnswers();  // the request was answered
  EXPECT_EQ(d.SweepOnce(t0 + milliseconds(9000)), 0);
  EXPECT_FALSE(conn.ServerShutDown());
}

TEST(RequestDeadlineTest, ABusyHandlerIsNeverCut) {
  Connection conn;
  RequestDeadline d(conn.port, milliseconds(1000));
  auto t0 = steady_clock::now();
  EXPECT_EQ(d.SweepOnce(t0), 0);
  conn.ClientSends();
  {
    RequestDeadline::Busy busy(&d, conn.client_port);
    EXPECT_EQ(d.SweepOnce(t0 + milliseconds(100)), 0);
    EXPECT_EQ(d.SweepOnce(t0 + milliseconds(5000)), 0);
  }
  conn.ServerAnswers();
  EXPECT_EQ(d.SweepOnce(t0 + milliseconds(6000)), 0);
  EXPECT_FALSE(conn.ServerShutDown());
}

}  // namespace
}  // namespace keyward
