#include "server/connection_limits.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace keyward {
namespace {

ConnectionLimitOptions Small() {
  ConnectionLimitOptions o;
  o.max_clients = 3;
  o.max_clients_per_cluster = 2;
  o.max_client_memory = 1000;
  o.auth_timeout_ms = 1000;
  o.idle_timeout_ms = 5000;
  o.fit_to_fd_limit = false;
  return o;
}

TEST(ConnectionLimitsTest, PerClusterAndGlobalCaps) {
  auto limits = ConnectionLimits::New(Small());
  ASSERT_TRUE(limits.ok()) << limits.status();
  ClientLimitState x1, x2, x3, y1, y2;
  EXPECT_EQ((*limits)->Admit("x", "p", &x1), "");
  EXPECT_EQ((*limits)->Admit("x", "p", &x2), "");
  std::string full = (*limits)->Admit("x", "p", &x3);
  EXPECT_NE(full.find("for this cluster"), std::string::npos) << full;
  EXPECT_EQ((*limits)->Admit("y", "p", &y1), "");  // another tenant still gets in
  EXPECT_NE((*limits)->Admit("y", "p", &y2).find("max number of clients reached"),
            std::string::npos);  // the global cap
  (*limits)->Release(&x1);
  (*limits)->Release(&x1);  // twice is harmless
  EXPECT_EQ((*limits)->ClusterClients("x"), 1u);
  EXPECT_EQ((*limits)->Admit("x", "p", &x3), "");
}

TEST(ConnectionLimitsTest, AuthAndIdleTimeouts) {
  int64_t now = 100000;
  auto limits = ConnectionLimits::New(Small(), [&] { return now; });
  ASSERT_TRUE(limits.ok());
  EXPECT_EQ((*limits)->SweepIntervalMs(), 100);  // a tenth of the shortest timeout
  ClientLimitState s;
  ASSERT_EQ((*limits)->Admit("x", "p", &s), "");
  now += 999;
  EXPECT_FALSE((*limits)->Expired(s, false).has_value());
  now += 1;
  auto goodbye = (*limits)->Expired(s, false);
  ASSERT_TRUE(goodbye.has_value());
  EXPECT_NE(goodbye->find("--auth-timeout"), std::string::npos) << *goodbye;
  // Authenticated: only idleness counts, and activity resets it.
  EXPECT_FALSE((*limits)->Expired(s, true).has_value());
  now += 4000;
  (*limits)->Touch(&s);
  now += 4999;
  EXPECT_FALSE((*limits)->Expired(s, true).has_value());
  now += 1;
  EXPECT_TRUE((*limits)->Expired(s, true).has_value());
}

TEST(ConnectionLimitsTest, IdleTimeoutOffByDefault) {
  ConnectionLimitOptions o = Small();
  o.idle_timeout_ms = 0;
  int64_t now = 0;
  auto limits = ConnectionLimits::New(o, [&] { return now; });
  ASSERT_TRUE(limits.ok());
  ClientLimitState s;
  ASSERT_EQ((*limits)->Admit("x", "p", &s), "");
  now += int64_t{1} << 40;
  EXPECT_FALSE((*limits)->Expired(s, true).has_value());
}

TEST(ConnectionLimitsTest, MemoryCapCountsAllClients) {
  auto limits = ConnectionLimits::New(Small());
  ASSERT_TRUE(limits.ok());
  ClientLimitState a, b;
  ASSERT_EQ((*limits)->Admit("x", "p", &a), "");
  ASSERT_EQ((*limits)->Admit("y", "p", &b), "");
  EXPECT_FALSE((*limits)->SetMemory(&a, 600));
  EXPECT_TRUE((*limits)->SetMemory(&b, 401));
  EXPECT_FALSE((*limits)->SetMemory(&b, 400));
  (*limits)->Release(&a);  // a closed client's buffers no longer count
  EXPECT_EQ((*limits)->total_memory(), 400u);
}

// At the descriptor limit a pending connection is accepted through the spare descriptor,
// refused with an -ERR line and closed, and the spare is taken back: the listener is no longer
// readable, so a level-triggered loop does not spin on it. Each test runs in its own process
// (gtest_discover_tests), so lowering RLIMIT_NOFILE here affects nothing else.
TEST(ConnectionLimitsTest, ShedsPendingConnectionAtFdLimit) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(lfd, 16), 0);
  socklen_t len = sizeof(addr);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);

  auto limits = ConnectionLimits::New(Small());
  ASSERT_TRUE(limits.ok());
  rlimit old{};
  getrlimit(RLIMIT_NOFILE, &old);
  // Use up every descriptor under a low soft limit.
  rlimit low = old;
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  while (true) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    filler.push_back(fd);
  }
  int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
  int err = errno;
  EXPECT_LT(fd, 0);
  EXPECT_EQ(err, EMFILE);
  EXPECT_EQ((*limits)->ShedAtFdLimit(lfd, err), ConnectionLimits::FdLimitOutcome::kShed);
  EXPECT_EQ((*limits)->shed_connections(), 1u);
  // Nothing left pending; the spare is held again (still no descriptor free).
  EXPECT_EQ((*limits)->ShedAtFdLimit(lfd, EMFILE), ConnectionLimits::FdLimitOutcome::kEmpty);
  EXPECT_LT(open("/dev/null", O_RDONLY), 0);
  for (int f : filler) close(f);
  setrlimit(RLIMIT_NOFILE, &old);

  char buf[128] = {};
  ssize_t n = recv(client, buf, sizeof(buf) - 1, 0);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buf, n).find("-ERR server out of file descriptors"), std::string::npos);
  EXPECT_EQ(recv(client, buf, sizeof(buf), 0), 0);  // and closed
  close(client);
  close(lfd);
}

}  // namespace
}  // namespace keyward
