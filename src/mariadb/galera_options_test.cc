#include "mariadb/galera_options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "mariadb/mariadb_instance.h"

namespace keyward {
namespace {

GaleraClusterSpec GaleraThreeNodes() {
  GaleraClusterSpec c;
  c.cluster_name = "kw-c1";
  for (int i = 0; i < 3; i++) {
    GaleraNode n;
    n.name = "n" + std::to_string(i);
    n.sql_port = static_cast<uint16_t>(3306 + i);
    n.galera_port = static_cast<uint16_t>(4567 + i * 10);
    n.ist_port = static_cast<uint16_t>(4568 + i * 10);
    n.sst_port = static_cast<uint16_t>(4444 + i);
    c.nodes.push_back(n);
  }
  c.tls_ca = "/c/tls/ca.pem";
  c.tls_cert = "/c/tls/server.pem";
  c.tls_key = "/c/tls/server.key";
  c.gcache_dir = "/dev/shm";
  c.sst_user = "root";
  return c;
}

bool GaleraHas(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

std::string GaleraProviderOptions(const std::vector<std::string>& lines) {
  for (const auto& l : lines) {
    if (l.rfind("wsrep_provider_options=", 0) == 0) return l;
  }
  return "";
}

TEST(GaleraOptions, NodeGetsPeersTlsSstAndAMemoryGcache) {
  auto lines = RenderGaleraOptions(GaleraThreeNodes(), 1);
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_TRUE(GaleraHas(*lines, "wsrep_on=ON"));
  // A node's option file takes them as extra options: none is a name keyward protects.
  MariadbInstanceSpec spec;
  spec.extra_options = *lines;
  EXPECT_TRUE(ValidateExtraOptions(spec).ok()) << ValidateExtraOptions(spec);
  EXPECT_TRUE(GaleraHas(*lines, "wsrep_provider=/usr/lib/galera/libgalera_smm.so"));
  EXPECT_TRUE(GaleraHas(
      *lines, "wsrep_cluster_address=gcomm://127.0.0.1:4567,127.0.0.1:4577,127.0.0.1:4587"));
  EXPECT_TRUE(GaleraHas(*lines, "wsrep_node_address=127.0.0.1:4577"));
  EXPECT_TRUE(GaleraHas(*lines, "wsrep_node_incoming_address=127.0.0.1:3307"));
  EXPECT_TRUE(GaleraHas(*lines, "wsrep_sst_method=mariabackup"));
  EXPECT_TRUE(GaleraHas(*lines, "wsrep_sst_receive_address=127.0.0.1:4445"));
  EXPECT_TRUE(GaleraHas(*lines, "binlog_format=ROW"));
  std::string p = GaleraProviderOptions(*lines);
  for (const char* want :
       {"gmcast.listen_addr=tcp://127.0.0.1:4577", "ist.recv_addr=127.0.0.1:4578", "socket.ssl=YES",
        "socket.ssl_ca=/c/tls/ca.pem", "socket.ssl_cert=/c/tls/server.pem",
        "socket.ssl_key=/c/tls/server.key", "gcache.dir=/dev/shm/kw-c1-n1",
        "gcache.name=/dev/shm/kw-c1-n1/galera.cache", "gcache.size=67108864"}) {
    EXPECT_NE(p.find(want), std::string::npos) << want << " not in " << p;
  }
  // SST over TLS, in its own group, after every [mariadbd] line.
  auto sst = std::find(lines->begin(), lines->end(), "[sst]");
  ASSERT_NE(sst, lines->end());
  EXPECT_TRUE(std::find(sst, lines->end(), "encrypt=3") != lines->end());
  EXPECT_TRUE(std::find(sst, lines->end(), "tca=/c/tls/ca.pem") != lines->end());
  EXPECT_TRUE(std::find(sst, lines->end(), "wsrep_on=ON") == lines->end());
}

TEST(GaleraOptions, RefusesWhatWouldBreakTheOptionFile) {
  auto c = GaleraThreeNodes();
  c.tls_key = "/k;socket.ssl=NO";
  EXPECT_FALSE(RenderGaleraOptions(c, 0).ok());
  c = GaleraThreeNodes();
  c.gcache_dir = "/dev/shm\n[mariadbd]";
  EXPECT_FALSE(RenderGaleraOptions(c, 0).ok());
  c = GaleraThreeNodes();
  c.nodes[2].galera_port = c.nodes[0].galera_port;
  auto dup = RenderGaleraOptions(c, 0);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("port"), std::string::npos);
  c = GaleraThreeNodes();
  c.cluster_name = "a b";
  EXPECT_FALSE(RenderGaleraOptions(c, 0).ok());
  EXPECT_FALSE(RenderGaleraOptions(GaleraThreeNodes(), 3).ok());
}

TEST(GaleraOptions, GcacheMustBeMemoryBacked) {
  if (std::filesystem::exists("/dev/shm")) {
    EXPECT_TRUE(CheckMemoryBacked("/dev/shm").ok());
  }
  // procfs is never tmpfs or ramfs: refused the same way as a disk.
  auto disk = CheckMemoryBacked("/proc");
  ASSERT_FALSE(disk.ok());
  EXPECT_NE(disk.message().find("plaintext"), std::string::npos);
  EXPECT_FALSE(CheckMemoryBacked("/no/such/dir").ok());
}

TEST(GaleraOptions, DescendantsOfAProcess) {
  EXPECT_TRUE(IsProcessDescendant(getpid(), getpid()));
  EXPECT_TRUE(IsProcessDescendant(getpid(), getppid()));
  EXPECT_FALSE(IsProcessDescendant(getppid(), getpid()));
  EXPECT_FALSE(IsProcessDescendant(999999999, getpid()));
}

}  // namespace
}  // namespace keyward
