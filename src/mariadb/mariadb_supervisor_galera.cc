// MariadbSupervisor's Galera side (nodes = 3): every node's wsrep options, the cluster-private
// TLS files, the memory-backed gcaches, and which node a stopped cluster bootstraps from.

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "crypto/tls_certificates.h"
#include "mariadb/child_process.h"
#include "mariadb/galera_layout.h"
#include "mariadb/galera_options.h"
#include "mariadb/gcache_dir.h"
#include "mariadb/key_service.h"
#include "mariadb/mariadb_supervisor.h"
#include "mariadb/os_account.h"
#include "util/file_util.h"
#include "util/log.h"

namespace keyward {
namespace {

// Galera's gcache holds write sets in plaintext: only memory-backed storage will do.

GaleraClusterSpec GaleraSpecFor(const MariadbSupervisorOptions& o, const TlsFiles& tls) {
  GaleraClusterSpec cluster;
  cluster.cluster_name = absl::StrCat("kw-", o.cluster_id);
  cluster.nodes = o.galera_nodes;
  for (size_t i = 0; i < cluster.nodes.size(); ++i) {
    cluster.nodes[i].name = absl::StrCat("n", i);
    cluster.nodes[i].host = o.host;
  }
  cluster.nodes[0].sql_port = static_cast<uint16_t>(o.port);
  cluster.tls_ca = tls.ca_cert;
  cluster.tls_cert = tls.cert;
  cluster.tls_key = tls.key;
  cluster.gcache_dir = kGaleraGcacheRoot;
  // The SST script runs as mariadbd's OS user and mariadb-backup logs in through the socket with
  // unix_socket auth: the account's own login (InitializeDataDir's @auth_root_socket) when
  // mariadbd runs as the account, else keyward's.
  cluster.sst_user = o.run_as.drop ? o.run_as.name : MariadbOsUserName();
  return cluster;
}

}  // namespace

absl::Status MariadbSupervisor::PrepareGalera() {
  if (options_.galera_nodes.size() != static_cast<size_t>(options_.nodes)) {
    return absl::InvalidArgumentError(absl::StrCat("a Galera cluster of ", options_.nodes,
                                                   " nodes needs the ports of each (got ",
                                                   options_.galera_nodes.size(), ")"));
  }
  if (absl::Status st = CheckMemoryBacked(kGaleraGcacheRoot); !st.ok()) return st;
  // What Galera and its state transfers need, named before any node starts.
  GaleraClusterSpec defaults;
  // The provider is a library (read), the rest are programs (run).
  for (const auto& [path, package, mode] :
       {std::tuple<std::string, const char*, int>{defaults.provider, "galera-4", R_OK},
        {"/usr/bin/mariadb-backup", "mariadb-backup", X_OK},
        {"/usr/bin/wsrep_sst_mariabackup", "mariadb-server", X_OK},
        {"/usr/bin/socat", "socat", X_OK}}) {
    if (access(path.c_str(), mode) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("a 3-node mariadb cluster needs ", path, " (", ErrnoText(errno),
                       "): apt-get install ", package, " (scripts/bootstrap)"));
    }
  }
  // Replication and SST peers authenticate each other with this CA's certificate (0600 keys).
  absl::StatusOr<TlsFiles> tls = EnsureSelfSignedTls(options_.cluster_dir + "/mariadb/galera-tls",
                                                     {options_.host, "localhost"},
                                                     /*peer_auth=*/true);
  if (!tls.ok()) return tls.status();
  if (options_.run_as.drop) {
    // The originals stay 0600 root's; mariadbd (and its SST script) as the account read copies
    // in node 0's run dir, which every node's account can search.
    for (auto [path, name] :
         {std::pair{&tls->ca_cert, "galera-ca.pem"}, std::pair{&tls->cert, "galera-cert.pem"},
          std::pair{&tls->key, "galera-key.pem"}}) {
      absl::StatusOr<std::string> shared =
          ShareFileWithAccount(*path, specs_[0].run_dir + "/" + name, options_.run_as);
      if (!shared.ok()) return shared.status();
      *path = *shared;
    }
  }
  GaleraClusterSpec cluster = GaleraSpecFor(options_, *tls);
  if (cluster.sst_user.empty()) {
    return absl::FailedPreconditionError(
        "the OS user keyward runs as has no name in the password database (getpwuid); Galera's "
        "state transfer connects as it");
  }
  if (absl::Status st = SaveGaleraPorts(GaleraPortsPath(options_.cluster_dir), cluster.nodes);
      !st.ok()) {
    return st;
  }
  for (size_t i = 0; i < specs_.size(); ++i) {
    absl::StatusOr<std::vector<std::string>> lines = RenderGaleraOptions(cluster, i);
    if (!lines.ok()) return lines.status();
    specs_[i].extra_options.insert(specs_[i].extra_options.end(), lines->begin(), lines->end());
    // /dev/shm is every user's: never a directory someone else made or a link (gcache_dir.h).
    if (absl::Status st = MakeFreshPrivateDir(GaleraGcacheDir(cluster, i), options_.run_as);
        !st.ok()) {
      return st;
    }
    // mariadbd writes its gcache there as the account.
    if (absl::Status st = GiveDirToAccount(GaleraGcacheDir(cluster, i), options_.run_as, true);
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> MariadbSupervisor::GaleraBootstrapNode() {
  std::vector<GaleraState> states;
  for (size_t i = 0; i < specs_.size(); ++i) {
    absl::StatusOr<GaleraState> st = ReadGaleraState(specs_[i].data_dir);
    if (!st.ok()) return st.status();
    if (st->present && st->seqno < 0) {
      // Not shut down cleanly (killed, or keyward was): InnoDB knows the last committed
      // position; mariadbd --wsrep-recover reads it (through the plugin: keys needed).
      std::vector<std::string> argv = MariadbdArgv(specs_[i]);
      argv.emplace_back("--wsrep-recover");
      ChildProcess::Options recover;
      recover.run_as = options_.run_as;  // it writes to the node's data dir, as mariadbd does
      absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(argv, recover);
      if (!child.ok()) return child.status();
      keys_->SetBootstrapPid((*child)->pid());
      absl::Status ran = (*child)->Release();
      if (ran.ok()) ran = (*child)->Wait("mariadbd --wsrep-recover");
      keys_->SetBootstrapPid(0);
      std::optional<int64_t> seqno = ParseRecoveredSeqno((*child)->StderrText());
      if (seqno) {
        st->seqno = *seqno;
        LogInfo("mariadb.galera_recovered",
                absl::StrCat("cluster ", options_.cluster_id, ": Galera node ", i,
                             " was not shut down cleanly; --wsrep-recover found position ", *seqno),
                {{"cluster_id", options_.cluster_id}});
      } else {
        LogWarn("mariadb.galera_recover",
                absl::StrCat("cluster ", options_.cluster_id, ": Galera node ", i,
                             " has no saved position and --wsrep-recover found none (",
                             ran.ok() ? "no position in its output" : ran.message(),
                             "); it rejoins by state transfer"),
                {{"cluster_id", options_.cluster_id}});
      }
    }
    states.push_back(*st);
  }
  std::optional<size_t> chosen = ChooseBootstrapNode(states);
  if (!chosen) return 0;  // never ran as a cluster: node 0 holds the data
  if (!states[*chosen].safe_to_bootstrap) {
    if (absl::Status st = MarkSafeToBootstrap(specs_[*chosen].data_dir); !st.ok()) return st;
    // Rewritten by keyward: mariadbd, as the account, must be able to write it again (lchown: a
    // link the account put there is not followed).
    const MariadbOsAccount& account = options_.run_as;
    const std::string state = specs_[*chosen].data_dir + "/grastate.dat";
    if (account.drop && lchown(state.c_str(), account.uid, account.gid) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot give ", state, " to ", account.name, ": ", ErrnoText(errno)));
    }
  }
  LogInfo("mariadb.galera_bootstrap",
          absl::StrCat("cluster ", options_.cluster_id, ": Galera bootstraps from node ", *chosen,
                       " (position ", states[*chosen].seqno, ", the most advanced)"),
          {{"cluster_id", options_.cluster_id}});
  return *chosen;
}

void MariadbSupervisor::RemoveGcaches() {
  RemoveGaleraGcaches(options_.cluster_id, options_.run_as);
}

}  // namespace keyward
