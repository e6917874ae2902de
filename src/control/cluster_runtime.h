#pragma once
// The data-plane side of clusters: opens a cluster's encrypted store under the master-key
// provider of its encryption key, serves it on its RESP endpoint, closes it (wiping its keys from
// memory), seals it (closed, but the endpoint keeps answering why) and crypto-shreds it. Holds
// no records: the control plane decides, this executes.
//
// Thread-safe. No lock is held while a store opens or closes (a KMS unwrap and RocksDB recovery)
// — only around the bookkeeping; callers serialise operations on one cluster (the control
// plane's per-cluster claims), and a second Open of a cluster being opened fails at once.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "control/cluster_engine.h"
#include "kms/master_key_provider.h"
#include "mariadb/mariadb_instance.h"
#include "mariadb/os_account.h"
#include "server/durability.h"
#include "server/resp_server.h"
#include "storage/cluster_store.h"

namespace keyward {

struct ClusterRuntimeOptions {
  std::string data_dir;
  std::string cluster_host = "127.0.0.1";
  // The host clients are told (endpoints in the API): --advertise-host, else cluster_host.
  std::string advertise_host;
  // A cluster's recorded port taken by another process at open: false (default) fails the open
  // (the cluster is inaccessible with the reason, retried at every storage check) — clients keep
  // connecting to the recorded port, and whoever holds it would collect their AUTH passwords;
  // true (--allow-port-change) moves the cluster to a new port.
  bool allow_port_change = false;
  Durability durability = Durability::kAlways;  // every endpoint's (hidden --durability)
  uint64_t data_key_rotation_seconds = 7 * 24 * 3600;
  // The server's --durability: what clusters created without a choice of their own get.
  Durability default_durability = Durability::kAlways;
  // mariadb clusters: where mariadbd and the key plugin are (empty: see MariadbSupervisorOptions).
  std::string mariadbd_path;
  std::string mariadb_plugin_dir;
  // Crashes in a row, each soon after a restart, before a mariadbd is left down (tests lower it).
  int mariadb_max_restarts = 10;
  // mariadb clusters' SQL port speaks TLS with these (PEM; serve's cluster endpoint
  // certificate) and refuses plaintext clients; empty: plaintext, like the kv endpoints.
  std::string mariadb_tls_cert;
  std::string mariadb_tls_key;
  // True when mariadb_tls_cert/key are the REST API's own (serve's default): mariadbd runs as
  // another account and reads copies of its key, so it must never get the API's key. Each
  // mariadb cluster then gets its own certificate from its own private CA instead
  // (MariadbSqlCaFile), made under its directory, 0600 keyward's.
  bool mariadb_tls_own_ca = false;
  // The OS account mariadbd runs as (serve --mariadb-user; drop = false: keyward's own uid), or
  // why there is none: then every mariadb cluster refuses to open with that message.
  MariadbOsAccount mariadb_run_as;
  std::string mariadb_account_error;
};

class MariadbSupervisor;

class ClusterRuntime {
 public:
  // An open cluster's store and the provider that unwrapped it. Holding one keeps the store
  // open; let go of it promptly (Close and Seal wait for no one).
  struct Handle {
    std::shared_ptr<ClusterStore> store;
    std::shared_ptr<MasterKeyProvider> provider;
    Durability durability = Durability::kAlways;
  };

  ClusterRuntime(ClusterRuntimeOptions options, RespServer& resp,
                 std::shared_ptr<SharedStorageResources> shared);
  ~ClusterRuntime();

  // Creates (create=true) or opens the store — one unwrap through `provider` — and serves it on
  // `port` (0 or taken: a free one; a sealed cluster keeps its port), acknowledging writes as
  // `durability` says. Returns the port. A mariadb cluster (SetEngineLookup) is served by its
  // own mariadbd on `port` instead (cluster_runtime_mariadb.cc); `initial_password` is the
  // password its admin account gets at creation.
  absl::StatusOr<int> Open(const std::string& cluster_id, const std::string& password_sha256_hex,
                           std::shared_ptr<MasterKeyProvider> provider, int port, bool create,
                           Durability durability, const std::string& initial_password = "");
  // Which engine serves a cluster (the control plane reads its record); unset: every cluster
  // is kv. Called without the runtime's lock held.
  void SetEngineLookup(std::function<ClusterEngine(const std::string& cluster_id)> lookup);
  // How many nodes serve a mariadb cluster (its record: 1 or 3); unset: 1.
  void SetNodesLookup(std::function<int(const std::string& cluster_id)> lookup);
  // An open mariadb cluster's SQL ports, node 0 (the recorded port) first; empty otherwise.
  std::vector<int> MariadbNodePorts(const std::string& cluster_id);
  // The key dictionary of an open cluster, whatever its engine; nullptr when not open.
  std::shared_ptr<KeyDictionary> Dictionary(const std::string& cluster_id);
  // An open mariadb cluster's supervisor (its instance and key service, for a backup); nullptr
  // when not open or not mariadb. Holding it keeps its keys in memory: let go promptly.
  std::shared_ptr<MariadbSupervisor> Mariadb(const std::string& cluster_id);
  // The instance a mariadb cluster whose files are in `cluster_dir` runs (this server's mariadbd
  // and plugin dir), for a restore into a directory no cluster uses yet.
  MariadbInstanceSpec MariadbSpecFor(const std::string& cluster_dir) const;
  // Stops serving and closes the store; its keys are wiped from memory. No-op when closed.
  void Close(const std::string& cluster_id);
  // Closes the store (memtables are in the synced WAL; keys wiped) but keeps the endpoint
  // listening: after AUTH every command answers `-ERR message`. A mariadb cluster's mariadbd is
  // shut down cleanly instead and its port stays recorded (connections are refused meanwhile).
  // Serves a sealed endpoint on `port` when the cluster is not open at all (a start with the key
  // unusable), with the cluster's `durability` for when it opens again. Returns the port.
  absl::StatusOr<int> Seal(const std::string& cluster_id, const std::string& password_sha256_hex,
                           int port, const std::string& message, Durability durability);
  // Repairs a cluster's damaged store (ClusterStore::Repair) while it is not open — sealed or
  // never opened. FailedPrecondition when it is open.
  absl::StatusOr<RepairReport> Repair(const std::string& cluster_id,
                                      std::shared_ptr<MasterKeyProvider> provider);
  bool IsOpen(const std::string& cluster_id);
  // Why an open cluster no longer serves although it is open (a mariadb cluster whose mariadbd
  // kept crashing and is not restarted any more); OK otherwise.
  absl::Status ServingError(const std::string& cluster_id);
  // A served (open or sealed) cluster's new password; its open connections are closed. OK and
  // nothing to do when it is not served (it opens with the stored password).
  absl::Status ChangePassword(const std::string& cluster_id,
                              const std::string& password_sha256_hex);
  // Bytes free for keyward on the data volume (statvfs f_bavail); nullopt when unknown.
  std::optional<uint64_t> FreeBytes() const;
  // An open kv cluster's store; nullopt for a mariadb cluster (see Dictionary).
  std::optional<Handle> Get(const std::string& cluster_id);
  std::vector<std::string> OpenClusterIds();
  // The open clusters acknowledging writes as `durability` says, with their stores (for the
  // everysec WAL syncer).
  std::vector<std::pair<std::string, std::shared_ptr<ClusterStore>>> StoresWith(
      Durability durability);
  Durability default_durability() const { return options_.default_durability; }
  // Destroys the key dictionary first, then every file. Closes the cluster first.
  absl::Status Shred(const std::string& cluster_id);
  void RotateDataKeys();
  void Shutdown();
  // Where INFO's "# Encryption" section comes from (set once, before clusters open).
  void SetEncryptionInfo(std::function<std::string(const std::string& cluster_id)> info);
  bool tls() const { return resp_.tls(); }  // endpoints speak TLS
  const std::string& host() const {
    return options_.advertise_host.empty() ? options_.cluster_host : options_.advertise_host;
  }
  // The CA certificate clients verify a mariadb cluster's SQL port with, when keyward issues
  // that port's certificate (mariadb_tls_own_ca); empty otherwise (the operator's CA).
  std::string MariadbSqlCaFile(const std::string& cluster_id) const;
  // Where a cluster's files live (DATA/clusters/<id>).
  std::string ClusterDir(const std::string& id) const { return Dir(id); }
  const std::string& data_dir() const { return options_.data_dir; }

 private:
  std::string Dir(const std::string& id) const;
  static void ReleaseAndWait(Handle closing);
  // Binds `endpoint` to its recorded `port` (0: any); a taken port per allow_port_change.
  absl::StatusOr<int> BindRecordedPort(const std::string& cluster_id,
                                       std::shared_ptr<ClusterEndpoint> endpoint, int port);
  std::shared_ptr<ClusterEndpoint> NewEndpoint(const std::string& cluster_id,
                                               const std::string& password_sha256_hex,
                                               Durability durability);
  ClusterEngine EngineOf(const std::string& cluster_id) const;
  // The mariadb side of Open, Seal and RotateDataKeys (cluster_runtime_mariadb.cc).
  absl::StatusOr<int> OpenMariadb(const std::string& cluster_id,
                                  std::shared_ptr<MasterKeyProvider> provider, int port,
                                  bool create, const std::string& initial_password);
  absl::StatusOr<int> SealMariadb(const std::string& cluster_id, int port);
  void RotateMariadbDataKeys();
  // Takes the cluster's supervisor out of the open set (nullptr when none); the caller stops
  // it without the lock.
  std::shared_ptr<MariadbSupervisor> TakeMariadbLocked(const std::string& cluster_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ClusterRuntimeOptions options_;
  RespServer& resp_;
  std::shared_ptr<SharedStorageResources> shared_;
  std::function<std::string(const std::string&)> encryption_info_;
  std::mutex mu_;
  std::map<std::string, Handle> open_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> opening_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> sealed_ports_ ABSL_GUARDED_BY(mu_);  // sealed endpoints
  std::map<std::string, int> open_ports_ ABSL_GUARDED_BY(mu_);
  std::function<ClusterEngine(const std::string&)> engine_of_;
  std::function<int(const std::string&)> nodes_of_;
  std::map<std::string, std::shared_ptr<MariadbSupervisor>> mariadb_ ABSL_GUARDED_BY(mu_);
};

}  // namespace keyward
