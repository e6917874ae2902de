#pragma once
// One `mariadb` cluster's data plane: its key dictionary (keys.dict in the cluster directory,
// opened with one unwrap through the key's provider), the MariadbKeyService that hands those keys
// to the keyward_key_management plugin inside mariadbd (only to the mariadbd keyward started,
// checked by uid and pid), and the mariadbd process itself (SupervisedProcess: started, restarted
// with backoff after a crash, stopped with SIGTERM).
//
// Layout under the cluster directory:
//   keys.dict            the key dictionary (as for kv clusters; shredding removes it first)
//   mariadb/data/        mariadbd's datadir (every page, log and temporary file encrypted)
//   mariadb/tmp/         its tmpdir (encrypt_tmp_files)
//   mariadb/keys/        the key socket (0700; 0710 + socket 0660 through the account's group
//                        when mariadbd runs as another account)
//   mariadb/run/         0700 (or root:account 01770): mariadbd's Unix socket and pid file, and
//                        my.cnf, rendered at every start (RenderOptionFile)
//
// When keyward runs as root, mariadbd runs as `run_as` (mariadb/os_account.h): data/, tmp/ and
// run/files/ are that account's, cluster_dir/mariadb and the directories up to `data_root` are
// searchable through its group only, and keyward's files stay out of its reach.
//
// A Galera cluster (nodes = 3, mariadb_supervisor_galera.cc) adds, under mariadb/:
//   n1/, n2/             nodes 1 and 2 (data/, tmp/, run/ as above; node 0 is mariadb/ itself)
//   galera.ports         every node's ports (galera_layout.h), kept across starts
//   galera-tls/          the cluster-private CA and node certificate for replication and SST
//                        (0600 root's; with run_as.drop mariadbd reads copies in node 0's run/)
// and each node's gcache in /dev/shm/kw-<cluster id>-n<i> (memory-backed: Galera keeps write sets
// there in plaintext), removed at Stop. Every node loads the plugin with the same key socket.
//
// Stop order: mariadbd first (clean shutdown: everything committed is in the redo log), then the
// key service, then the dictionary is dropped (its keys wiped). No lock is held while a process
// starts or stops.

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kms/master_key_provider.h"
#include "mariadb/galera_layout.h"
#include "mariadb/mariadb_instance.h"
#include "mariadb/os_account.h"
#include "storage/key_dictionary.h"

namespace keyward {

class MariadbKeyService;
class SupervisedProcess;

struct MariadbSupervisorOptions {
  std::string cluster_id;
  std::string cluster_dir;  // DATA/clusters/<id>
  // The account mariadbd runs as (drop = false: keyward's own) and the top directory made
  // searchable for it on the way to cluster_dir (DATA; empty: cluster_dir's grandparent).
  MariadbOsAccount run_as;
  std::string data_root;
  std::string host = "127.0.0.1";
  int port = 0;  // mariadbd's TCP port (the cluster endpoint); must be set
  // Empty: /usr/sbin/mariadbd, and the directory of the running keyward binary (where the
  // build and the install put keyward_key_management.so). Environment overrides for tests and
  // unusual installs: KEYWARD_MARIADBD, KEYWARD_MARIADB_PLUGIN_DIR.
  std::string mariadbd_path;
  std::string plugin_dir;
  // TLS for client connections when the cluster listener has it (all three or none).
  std::string tls_cert_path, tls_key_path, tls_ca_path;
  // How long a start (crash recovery included) may take before it counts as failed.
  std::chrono::milliseconds ready_timeout{180000};
  // How long a clean shutdown may take before SIGKILL (logged).
  std::chrono::milliseconds stop_grace{120000};
  // Crashes in a row, each within 5 s of a restart, before mariadbd is left down.
  int max_restarts = 10;
  // 1: one mariadbd. kGaleraNodes: a MariaDB Galera cluster; galera_nodes then holds every
  // node's ports (node 0's sql_port is `port`), saved to galera.ports at Start.
  int nodes = 1;
  std::vector<GaleraNode> galera_nodes;
};

class MariadbSupervisor {
 public:
  // create: a new key dictionary and an initialised data dir whose `admin` account has
  // `admin_password`; otherwise opens keys.dict (one unwrap through `provider`). Then starts
  // mariadbd and returns once it accepts connections. On failure nothing is left running and
  // no key stays in memory. Errors about the cluster's own files or mariadbd are marked as
  // storage errors (storage/storage_error.h); an unwrap refused by the KMS is not.
  static absl::StatusOr<std::unique_ptr<MariadbSupervisor>> Start(
      MariadbSupervisorOptions options, MasterKeyProvider& provider, bool create,
      const std::string& admin_password);
  ~MariadbSupervisor();  // Stop()

  // mariadbd shut down cleanly (SIGKILL only after stop_grace, logged), key service stopped,
  // keys wiped. Idempotent.
  void Stop();

  // Stops a mariadbd an earlier keyward left running for the cluster in `cluster_dir` (keyward
  // was killed, not stopped): it holds the data dir and the port, and keys in its plugin's
  // cache. SIGTERM, up to `grace`, then SIGKILL; logged. Start does it too; the runtime calls it
  // before it checks that the cluster's port is free.
  static void StopLeftover(const std::string& cluster_id, const std::string& cluster_dir,
                           std::chrono::milliseconds grace);

  KeyDictionary& dictionary() { return *dictionary_; }
  // The running instance and the key service its plugin asks, for a backup of it (mariadb-backup
  // is allowed on the service by pid while it runs). Valid while the supervisor lives.
  MariadbInstanceSpec instance_spec() const;
  MariadbKeyService& key_service() { return *keys_; }
  std::shared_ptr<KeyDictionary> shared_dictionary() { return dictionary_; }
  int port() const { return options_.port; }
  // Node 0's mariadbd.
  pid_t pid() const;
  int restarts() const;
  // Whether the supervisor gave up restarting a crashing mariadbd (every node's, for Galera).
  bool gave_up() const;
  int nodes() const { return options_.nodes; }
  // Every node's SQL port, node 0 first.
  std::vector<int> node_ports() const;
  pid_t node_pid(size_t node) const;
  // Where a cluster's Galera ports are kept (galera_layout.h).
  static std::string GaleraPortsPath(const std::string& cluster_dir);

 private:
  MariadbSupervisor(MariadbSupervisorOptions options, std::shared_ptr<KeyDictionary> dictionary);
  absl::Status Run(bool create, const std::string& admin_password);
  // Spawns node `node` (with --wsrep-new-cluster when `new_cluster`) and waits until it serves.
  absl::Status StartNode(size_t node, bool new_cluster);
  bool AllowedPeer(pid_t peer) const;
  // With run_as.drop: every node's dirs reachable for / owned by the account, TLS copies it may
  // read, the plugin checked readable (once).
  absl::Status PrepareAccount();
  // Galera (mariadb_supervisor_galera.cc): adds every node's wsrep options to specs_ (TLS files,
  // gcache directories, galera.ports); then, for a cluster that ran before, the node to
  // bootstrap from (ChooseBootstrapNode; --wsrep-recover for a node without a saved position).
  absl::Status PrepareGalera();
  absl::StatusOr<size_t> GaleraBootstrapNode();
  void RemoveGcaches();

  const MariadbSupervisorOptions options_;
  std::shared_ptr<KeyDictionary> dictionary_;
  std::unique_ptr<MariadbKeyService> keys_;
  std::vector<MariadbInstanceSpec> specs_;
  std::vector<std::unique_ptr<SupervisedProcess>> mariadbd_;  // one per node
  // The key service answers only these mariadbd (and, for Galera, their SST descendants).
  std::array<std::atomic<pid_t>, kGaleraNodes> node_pids_{};
};

// The instance a supervisor runs for `options` (paths under cluster_dir/mariadb; mariadbd and
// the plugin dir resolved as Start resolves them), for jobs without a running supervisor (a
// restore into a new cluster's directory).
MariadbInstanceSpec MariadbClusterInstanceSpec(MariadbSupervisorOptions options);

// Waits (at most `timeout`) until host:port answers with a MySQL protocol greeting, or `running`
// turns false. Exposed for tests.
absl::Status WaitForMysqlGreeting(const std::string& host, int port,
                                  std::chrono::milliseconds timeout,
                                  const std::function<bool()>& running);

}  // namespace keyward
