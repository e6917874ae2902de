#include "cli/serve_tls.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace keyward {
namespace {

// Names resolve only through this table: what /etc/hosts or DNS would say.
HostResolver FakeDns(std::map<std::string, std::vector<std::string>> table) {
  return [table](const std::string& host) {
    auto it = table.find(host);
    return it == table.end() ? std::vector<std::string>{} : it->second;
  };
}

TEST(IsLoopbackHost, LiteralsNeedNoResolver) {
  auto no_dns = FakeDns({});
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1", no_dns));
  EXPECT_TRUE(IsLoopbackHost("127.8.9.10", no_dns));
  EXPECT_TRUE(IsLoopbackHost("::1", no_dns));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.5", no_dns));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0", no_dns));
  EXPECT_FALSE(IsLoopbackHost("::", no_dns));
  EXPECT_FALSE(IsLoopbackHost("", no_dns));
}

TEST(IsLoopbackHost, ANameIsJudgedByEveryAddressItResolvesTo) {
  EXPECT_TRUE(IsLoopbackHost("localhost", FakeDns({{"localhost", {"127.0.0.1", "::1"}}})));
  // "localhost" pointed elsewhere (a tampered /etc/hosts, a search-domain DNS answer) is not
  // trusted for its name.
  EXPECT_FALSE(IsLoopbackHost("localhost", FakeDns({{"localhost", {"192.0.2.7"}}})));
  EXPECT_FALSE(IsLoopbackHost("localhost", FakeDns({{"localhost", {"127.0.0.1", "192.0.2.7"}}})));
  EXPECT_FALSE(IsLoopbackHost("localhost", FakeDns({})));  // unresolvable: not loopback
  EXPECT_FALSE(IsLoopbackHost("db.internal", FakeDns({{"db.internal", {"10.1.2.3"}}})));
}

TEST(IsLoopbackHost, TheSystemResolverAnswersForLocalhost) {
  // Debian's /etc/hosts maps localhost to 127.0.0.1 (and ::1): still loopback by resolution.
  std::vector<std::string> addresses = ResolveHost("localhost");
  ASSERT_FALSE(addresses.empty());
  EXPECT_TRUE(IsLoopbackHost("localhost"));
}

ParsedFlags Flags(std::map<std::string, std::string> values) {
  ParsedFlags f;
  f.values = std::move(values);
  return f;
}

TEST(ChooseListenerSecurity, ListenOnLocalhostThatResolvesElsewhereNeedsTls) {
  auto evil = FakeDns({{"localhost", {"192.0.2.7"}}});
  auto refused = ChooseListenerSecurity(Flags({}), "/nonexistent", "localhost", evil);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--listen localhost is reachable from other machines"),
            std::string::npos)
      << refused.status();
  auto fine = ChooseListenerSecurity(Flags({}), "/nonexistent", "localhost",
                                     FakeDns({{"localhost", {"127.0.0.1"}}}));
  EXPECT_TRUE(fine.ok()) << fine.status();
}

TEST(ChooseListenerSecurity, ClusterHostOnTheNetworkNeedsClusterTls) {
  auto dns = FakeDns({});
  auto refused = ChooseListenerSecurity(Flags({{"cluster-host", "10.0.0.5"}}), "/nonexistent",
                                        "127.0.0.1", dns);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--cluster-tls-cert"), std::string::npos);
  auto half = ChooseListenerSecurity(Flags({{"cluster-tls-cert", "/x.pem"}}), "/nonexistent",
                                     "127.0.0.1", dns);
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("--cluster-tls-cert and --cluster-tls-key go together"),
            std::string::npos);
}

TEST(ChooseListenerSecurity, SelfSignedCoversBothListeners) {
  std::string dir = std::filesystem::temp_directory_path() /
                    ("kw-serve-tls-" + std::to_string(getpid()) + "-" + std::to_string(rand()));
  std::filesystem::create_directories(dir);
  auto s = ChooseListenerSecurity(Flags({{"tls-self-signed", ""}, {"cluster-host", "10.0.0.5"}}),
                                  dir, "127.0.0.1", FakeDns({}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->cluster_cert.empty());
  EXPECT_EQ(s->cluster_cert, s->api_cert);
  EXPECT_EQ(s->cluster_key, s->api_key);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace keyward
