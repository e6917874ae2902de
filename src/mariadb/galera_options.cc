#include "mariadb/galera_options.h"

#include <linux/magic.h>
#include <sys/vfs.h>

#include <cerrno>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/file_util.h"

namespace keyward {
namespace {

bool GaleraSafeName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

// A value that can sit inside wsrep_provider_options="a=b;c=d" and an option-file line.
bool GaleraSafeValue(const std::string& s) {
  return !s.empty() && s.find_first_of(";\"'\n\r=") == std::string::npos;
}

absl::Status GaleraInvalid(const std::string& field, const std::string& value, const char* rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("Galera option ", field, " '", value, "' is not allowed: ", rule));
}

}  // namespace

std::string GaleraGcacheDir(const GaleraClusterSpec& cluster, size_t node) {
  return absl::StrCat(cluster.gcache_dir, "/", cluster.cluster_name, "-",
                      node < cluster.nodes.size() ? cluster.nodes[node].name : "");
}

absl::StatusOr<std::vector<std::string>> RenderGaleraOptions(const GaleraClusterSpec& cluster,
                                                             size_t node) {
  if (node >= cluster.nodes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Galera node ", node, " does not exist (", cluster.nodes.size(), " nodes)"));
  }
  if (!GaleraSafeName(cluster.cluster_name)) {
    return GaleraInvalid("cluster name", cluster.cluster_name, "use 1 to 64 of [A-Za-z0-9_-]");
  }
  std::set<std::pair<std::string, uint16_t>> ports;
  std::vector<std::string> peers;
  for (const GaleraNode& n : cluster.nodes) {
    if (!GaleraSafeName(n.name))
      return GaleraInvalid("node name", n.name, "use 1 to 64 of [A-Za-z0-9_-]");
    if (!GaleraSafeValue(n.host) || n.host.find_first_of(", /") != std::string::npos) {
      return GaleraInvalid("node host", n.host, "an IP address or host name");
    }
    for (uint16_t p : {n.sql_port, n.galera_port, n.ist_port, n.sst_port}) {
      if (p == 0 || !ports.insert({n.host, p}).second) {
        return GaleraInvalid(absl::StrCat("ports of node ", n.name), absl::StrCat(p),
                             "every port must be set and used once per host");
      }
    }
    peers.push_back(absl::StrCat(n.host, ":", n.galera_port));
  }
  for (const auto& [field, value] :
       {std::pair<const char*, const std::string*>{"provider", &cluster.provider},
        {"tls_ca", &cluster.tls_ca},
        {"tls_cert", &cluster.tls_cert},
        {"tls_key", &cluster.tls_key},
        {"gcache_dir", &cluster.gcache_dir},
        {"sst_user", &cluster.sst_user}}) {
    if (!GaleraSafeValue(*value) || value->find(':') != std::string::npos) {
      return GaleraInvalid(field, *value, "set it, without ';', ':', '=', quotes or line breaks");
    }
  }
  if (cluster.gcache_size < (8ull << 20)) {
    return GaleraInvalid("gcache_size", absl::StrCat(cluster.gcache_size), "at least 8 MiB");
  }
  const GaleraNode& self = cluster.nodes[node];
  const std::string gcache = GaleraGcacheDir(cluster, node);
  const std::vector<std::string> provider_options = {
      absl::StrCat("gmcast.listen_addr=tcp://", self.host, ":", self.galera_port),
      absl::StrCat("ist.recv_addr=", self.host, ":", self.ist_port),
      // Replication between nodes: TLS, peers verified against the cluster's private CA.
      "socket.ssl=YES",
      absl::StrCat("socket.ssl_ca=", cluster.tls_ca),
      absl::StrCat("socket.ssl_cert=", cluster.tls_cert),
      absl::StrCat("socket.ssl_key=", cluster.tls_key),
      // Write sets in plaintext: on memory-backed storage only, capped, no pages kept.
      absl::StrCat("gcache.dir=", gcache),
      absl::StrCat("gcache.name=", gcache, "/galera.cache"),
      absl::StrCat("gcache.size=", cluster.gcache_size),
      absl::StrCat("gcache.page_size=", cluster.gcache_size / 4),
      "gcache.keep_pages_size=0",
      "gcache.recover=no",
  };
  std::vector<std::string> lines = {
      "wsrep_on=ON",
      absl::StrCat("wsrep_provider=", cluster.provider),
      absl::StrCat("wsrep_provider_options=\"", absl::StrJoin(provider_options, ";"), "\""),
      absl::StrCat("wsrep_cluster_name=", cluster.cluster_name),
      absl::StrCat("wsrep_cluster_address=gcomm://", absl::StrJoin(peers, ",")),
      absl::StrCat("wsrep_node_name=", self.name),
      absl::StrCat("wsrep_node_address=", self.host, ":", self.galera_port),
      absl::StrCat("wsrep_node_incoming_address=", self.host, ":", self.sql_port),
      "wsrep_sst_method=mariabackup",
      absl::StrCat("wsrep_sst_receive_address=", self.host, ":", self.sst_port),
      absl::StrCat("wsrep_sst_auth=", cluster.sst_user, ":"),
      "wsrep_slave_threads=2",
      // What Galera requires of every node.
      "binlog_format=ROW",
      "innodb_autoinc_lock_mode=2",
      // SST over socat with TLS (encrypt=3: certificate and key, peer checked against the CA).
      "[sst]",
      "encrypt=3",
      absl::StrCat("tca=", cluster.tls_ca),
      absl::StrCat("tcert=", cluster.tls_cert),
      absl::StrCat("tkey=", cluster.tls_key),
      "ssl-mode=VERIFY_CA",
  };
  return lines;
}

absl::Status CheckMemoryBacked(const std::string& dir) {
  struct statfs st {};
  if (statfs(dir.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("Galera gcache directory '", dir, "' is unusable: ", ErrnoText(errno)));
  }
  if (st.f_type == TMPFS_MAGIC || st.f_type == RAMFS_MAGIC) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "Galera gcache directory '", dir,
      "' is not memory-backed: Galera keeps replicated write sets there in plaintext; use "
      "/dev/shm or another tmpfs"));
}

bool IsProcessDescendant(pid_t pid, pid_t ancestor) {
  for (int depth = 0; pid > 1 && depth < 64; ++depth) {
    if (pid == ancestor) return true;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
    size_t close = text.rfind(')');
    if (close == std::string::npos) return false;
    char state = 0;
    int parent = 0;
    if (sscanf(text.c_str() + close + 1, " %c %d", &state, &parent) != 2) return false;
    pid = parent;
  }
  return pid == ancestor;
}

}  // namespace keyward
