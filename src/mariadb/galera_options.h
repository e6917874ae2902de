#pragma once
// The wsrep (Galera) options of one node of a multi-node mariadb cluster: MariaDB Galera
// (Debian galera-4) replicating write sets between mariadbd processes on loopback (or the
// cluster host) ports. Appended to a node's MariadbInstanceSpec::extra_options, so every node
// also carries every encryption option of mariadb_instance.h and loads the key plugin.
//
// What each node gets, and why:
//  - replication over TLS: wsrep_provider_options socket.ssl_* with a cluster-private CA
//    (crypto/tls_certificates.h, made by keyward; one node certificate for every node);
//  - state transfers (SST) by mariabackup, streamed over socat with TLS ([sst] encrypt=3 with
//    the same CA and certificate); incremental transfers (IST) on their own port;
//  - the gcache — Galera's ring buffer of write sets, which it keeps in PLAINTEXT (galera-4 has
//    no gcache encryption) — in gcache_dir, which must be memory-backed (tmpfs, e.g. /dev/shm):
//    write sets never reach disk there (unless the machine swaps: run without swap or with
//    encrypted swap). Its size is capped (gcache_size), and its page files live there too;
//  - every node loads keyward_key_management with the SAME key socket (one MariadbKeyService
//    serving the cluster's dictionary): mariabackup's SST copies InnoDB pages still encrypted, and
//    the joiner's `mariadb-backup --prepare` reads that socket from backup-my.cnf, so it must
//    name a socket the joiner's processes may use. The service must allow each node's mariadbd
//    and its descendants (the SST scripts and mariadb-backup): see IsProcessDescendant.
//
// Thread-safe: pure functions (CheckMemoryBacked reads statfs).

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mariadb/mariadb_instance.h"

namespace keyward {

struct GaleraNode {
  std::string name;  // wsrep_node_name: [A-Za-z0-9_-]+
  std::string host = "127.0.0.1";
  uint16_t sql_port = 0;     // mariadbd's port (the node's MariadbInstanceSpec::port)
  uint16_t galera_port = 0;  // group communication (gmcast)
  uint16_t ist_port = 0;     // incremental state transfer
  uint16_t sst_port = 0;     // state snapshot transfer (mariabackup over socat)
};

struct GaleraClusterSpec {
  std::string cluster_name;  // wsrep_cluster_name: [A-Za-z0-9_-]+
  std::vector<GaleraNode> nodes;
  std::string provider = "/usr/lib/galera/libgalera_smm.so";
  // Replication and SST TLS: the cluster-private CA and the node certificate and key (PEM).
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // Memory-backed directory for the nodes' gcaches (each node uses gcache_dir/<node name>).
  std::string gcache_dir = "/dev/shm";
  uint64_t gcache_size = 64ull << 20;
  // The database account mariabackup's SST connects as on the donor (the OS user's unix_socket
  // account InitializeDataDir creates: "root" when keyward runs as root).
  std::string sst_user;
};

// The node's gcache directory: gcache_dir/<cluster name>-<node name>.
std::string GaleraGcacheDir(const GaleraClusterSpec& cluster, size_t node);

// The option lines for node `node` of `cluster`: first the [mariadbd] lines, then an "[sst]"
// group line and its lines — append them LAST to MariadbInstanceSpec::extra_options.
// InvalidArgument naming the field for a name, path or port that would break the option file or
// wsrep_provider_options (';', quotes, line breaks, port 0, duplicate ports).
absl::StatusOr<std::vector<std::string>> RenderGaleraOptions(const GaleraClusterSpec& cluster,
                                                             size_t node);

// mariadbd's argument that starts a new cluster (the first node only, once).
inline constexpr char kGaleraNewClusterArg[] = "--wsrep-new-cluster";

// OK when `dir` is on tmpfs or ramfs; FailedPrecondition naming the directory and the fix
// otherwise (the gcache would put plaintext write sets on disk).
absl::Status CheckMemoryBacked(const std::string& dir);

// Whether `pid` is `ancestor` or one of its descendants (walks /proc/<pid>/stat parents). For
// key-service peer checks of Galera nodes, whose SST scripts run mariadb-backup as children.
bool IsProcessDescendant(pid_t pid, pid_t ancestor);

}  // namespace keyward
