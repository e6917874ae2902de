// ClusterRuntime's side of mariadb clusters: each open one is a MariadbSupervisor (its key
// dictionary, the key service for the plugin, and mariadbd on the cluster's port). Open, close,
// seal, shred and data-key rotation go through the same ClusterRuntime calls as for kv clusters,
// so every control-plane rule and state change applies to both engines unchanged.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <set>

#include "absl/strings/str_cat.h"
#include "control/cluster_runtime.h"
#include "crypto/tls_certificates.h"
#include "mariadb/galera_layout.h"
#include "mariadb/mariadb_supervisor.h"
#include "storage/storage_error.h"
#include "util/file_util.h"
#include "util/log.h"

namespace keyward {
namespace {

// Binds host:port (0: any free port) and returns the port it got, or the errno. The socket is
// closed again: mariadbd binds the port itself a moment later (SO_REUSEADDR on both sides).
absl::StatusOr<int> ProbePort(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster host ", host, " is not an IPv4 address; mariadb clusters need one"));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoText(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(ErrnoText(err));
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

// A Galera cluster's ports: each node's from galera.ports when still free, else a new free one
// (logged for the SQL ports clients use). Node 0's SQL port is the cluster's `port`.
absl::StatusOr<std::vector<GaleraNode>> GaleraPortsFor(const std::string& cluster_id,
                                                       const std::string& cluster_dir,
                                                       const std::string& host, int port,
                                                       int nodes) {
  std::vector<GaleraNode> out(static_cast<size_t>(nodes));
  absl::StatusOr<std::vector<GaleraNode>> saved =
      LoadGaleraPorts(MariadbSupervisor::GaleraPortsPath(cluster_dir));
  if (saved.ok() && saved->size() == out.size()) {
    out = *saved;
  } else if (!saved.ok() && !absl::IsNotFound(saved.status())) {
    return MarkStorageError(saved.status());
  }
  std::set<int> used = {port};
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t* ports[] = {&out[i].sql_port, &out[i].galera_port, &out[i].ist_port, &out[i].sst_port};
    for (uint16_t* p : ports) {
      if (i == 0 && p == &out[i].sql_port) {
        *p = static_cast<uint16_t>(port);
        continue;
      }
      int want = *p;
      if (want != 0 && !used.count(want) && ProbePort(host, want).ok()) {
        used.insert(want);
        continue;
      }
      int got = 0;
      for (int tries = 0; tries < 20 && (got == 0 || used.count(got)); ++tries) {
        absl::StatusOr<int> free = ProbePort(host, 0);
        if (!free.ok()) return free.status();
        got = *free;
      }
      if (used.count(got)) return absl::UnavailableError("no free port for a Galera node");
      if (want != 0 && p == &out[i].sql_port) {
        LogWarn("cluster.port_changed",
                absl::StrCat("cluster ", cluster_id, ": Galera node ", i, "'s port ", want,
                             " is taken; it serves on ", got, " now"),
                {{"cluster_id", cluster_id}, {"old_port", want}});
      }
      *p = static_cast<uint16_t>(got);
      used.insert(got);
    }
  }
  return out;
}

// A mariadb cluster's SQL certificate and its CA when keyward issues them (mariadb_tls_own_ca).
std::string SqlTlsDir(const std::string& cluster_dir) { return cluster_dir + "/mariadb/sql-tls"; }

// Every name clients may reach the SQL port by.
std::vector<std::string> SqlTlsHosts(const ClusterRuntimeOptions& o) {
  std::vector<std::string> hosts = {"127.0.0.1", "localhost", "::1"};
  for (const std::string& h : {o.cluster_host, o.advertise_host}) {
    if (h.empty() || h == "0.0.0.0" || h == "::" || h == "[::]") continue;
    if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  }
  return hosts;
}

}  // namespace

std::string ClusterRuntime::MariadbSqlCaFile(const std::string& cluster_id) const {
  if (!options_.mariadb_tls_own_ca || options_.mariadb_tls_cert.empty()) return "";
  return SqlTlsDir(Dir(cluster_id)) + "/ca.pem";
}

void ClusterRuntime::SetNodesLookup(std::function<int(const std::string&)> lookup) {
  nodes_of_ = std::move(lookup);
}

std::vector<int> ClusterRuntime::MariadbNodePorts(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = mariadb_.find(cluster_id);
  if (it == mariadb_.end()) return {};
  return it->second->node_ports();
}

void ClusterRuntime::SetEngineLookup(std::function<ClusterEngine(const std::string&)> lookup) {
  engine_of_ = std::move(lookup);
}

ClusterEngine ClusterRuntime::EngineOf(const std::string& cluster_id) const {
  return engine_of_ ? engine_of_(cluster_id) : ClusterEngine::kKv;
}

std::shared_ptr<KeyDictionary> ClusterRuntime::Dictionary(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto m = mariadb_.find(cluster_id); m != mariadb_.end()) {
    return m->second->shared_dictionary();
  }
  auto it = open_.find(cluster_id);
  if (it == open_.end()) return nullptr;
  // The store owns its dictionary; the alias keeps the store (and so the dictionary) alive.
  return std::shared_ptr<KeyDictionary>(it->second.store, &it->second.store->mutable_dictionary());
}

std::shared_ptr<MariadbSupervisor> ClusterRuntime::Mariadb(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = mariadb_.find(cluster_id);
  return it == mariadb_.end() ? nullptr : it->second;
}

MariadbInstanceSpec ClusterRuntime::MariadbSpecFor(const std::string& cluster_dir) const {
  MariadbSupervisorOptions mo;
  mo.cluster_dir = cluster_dir;
  mo.host = options_.cluster_host;
  mo.mariadbd_path = options_.mariadbd_path;
  mo.plugin_dir = options_.mariadb_plugin_dir;
  mo.run_as = options_.mariadb_run_as;  // a restore's children run as mariadbd will
  mo.data_root = options_.data_dir;
  return MariadbClusterInstanceSpec(std::move(mo));
}

absl::Status ClusterRuntime::ServingError(const std::string& cluster_id) {
  std::shared_ptr<MariadbSupervisor> m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = mariadb_.find(cluster_id);
    if (it == mariadb_.end()) return absl::OkStatus();
    m = it->second;
  }
  if (!m->gave_up()) return absl::OkStatus();
  return MarkStorageError(absl::UnavailableError(
      "its mariadbd kept crashing soon after each restart and is not restarted any more (its "
      "last words are in keyward's log, event mariadbd.log)"));
}

std::shared_ptr<MariadbSupervisor> ClusterRuntime::TakeMariadbLocked(
    const std::string& cluster_id) {
  auto it = mariadb_.find(cluster_id);
  if (it == mariadb_.end()) return nullptr;
  std::shared_ptr<MariadbSupervisor> out = std::move(it->second);
  mariadb_.erase(it);
  return out;
}

absl::StatusOr<int> ClusterRuntime::OpenMariadb(const std::string& cluster_id,
                                                std::shared_ptr<MasterKeyProvider> provider,
                                                int port, bool create,
                                                const std::string& initial_password) {
  if (!options_.mariadb_account_error.empty()) {
    // A storage error: the cluster is inaccessible with this reason and retried at every
    // storage check, so it opens once the account exists (after a restart of keyward).
    return MarkStorageError(absl::FailedPreconditionError(options_.mariadb_account_error));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.count(cluster_id) || mariadb_.count(cluster_id) || opening_.count(cluster_id)) {
      return absl::FailedPreconditionError("cluster is already open or being opened");
    }
    if (auto s = sealed_ports_.find(cluster_id); s != sealed_ports_.end() && port == 0) {
      port = s->second;
    }
    opening_.insert(cluster_id);
  }
  auto done_opening = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    opening_.erase(cluster_id);
  };
  if (create && initial_password.empty()) {
    done_opening();
    return absl::InvalidArgumentError("a new mariadb cluster needs its admin password");
  }
  // A mariadbd a killed keyward left behind holds the port: it goes first.
  MariadbSupervisor::StopLeftover(cluster_id, Dir(cluster_id), std::chrono::seconds(120));
  // The recorded port, as for kv clusters: clients connect there, so a port another process
  // holds is not moved silently.
  absl::StatusOr<int> bound = ProbePort(options_.cluster_host, port);
  if (!bound.ok() && port != 0 && absl::IsUnavailable(bound.status())) {
    if (options_.allow_port_change) {
      LogWarn("cluster.port_changed",
              absl::StrCat("cluster ", cluster_id, ": port ", port, " is taken (",
                           bound.status().message(), "); --allow-port-change: moving it"),
              {{"cluster_id", cluster_id}, {"old_port", port}});
      bound = ProbePort(options_.cluster_host, 0);
    } else {
      bound = MarkStorageError(absl::UnavailableError(absl::StrCat(
          "its port ", port, " on ", options_.cluster_host, " is taken by another process (",
          bound.status().message(),
          "); its clients connect there, so it is not moved silently: free the port (it is "
          "retried at every storage check) or restart keyward with --allow-port-change")));
    }
  }
  if (!bound.ok()) {
    done_opening();
    return bound.status();
  }
  const int nodes = nodes_of_ ? nodes_of_(cluster_id) : 1;
  MariadbSupervisorOptions mo;
  if (nodes > 1) {
    auto galera = GaleraPortsFor(cluster_id, Dir(cluster_id), options_.cluster_host, *bound, nodes);
    if (!galera.ok()) {
      done_opening();
      return galera.status();
    }
    mo.galera_nodes = std::move(*galera);
  }
  mo.nodes = nodes;
  mo.tls_cert_path = options_.mariadb_tls_cert;
  mo.tls_key_path = options_.mariadb_tls_key;
  if (options_.mariadb_tls_own_ca && !mo.tls_cert_path.empty()) {
    // Not the API's key: the cluster's own certificate (made once, reissued near expiry).
    auto own = EnsureSelfSignedTls(SqlTlsDir(Dir(cluster_id)), SqlTlsHosts(options_));
    if (!own.ok()) {
      done_opening();
      return absl::Status(
          own.status().code(),
          absl::StrCat("cannot make the SQL port's TLS certificate: ", own.status().message()));
    }
    mo.tls_cert_path = own->cert;
    mo.tls_key_path = own->key;
  }
  mo.cluster_id = cluster_id;
  mo.cluster_dir = Dir(cluster_id);
  mo.host = options_.cluster_host;
  mo.port = *bound;
  mo.mariadbd_path = options_.mariadbd_path;
  mo.plugin_dir = options_.mariadb_plugin_dir;
  mo.max_restarts = options_.mariadb_max_restarts;
  mo.run_as = options_.mariadb_run_as;
  mo.data_root = options_.data_dir;
  // The slow part — an unwrap through the KMS, initialisation, InnoDB recovery — runs without
  // the lock.
  auto started = MariadbSupervisor::Start(std::move(mo), *provider, create, initial_password);
  if (!started.ok()) {
    done_opening();
    return started.status();
  }
  std::lock_guard<std::mutex> lock(mu_);
  opening_.erase(cluster_id);
  sealed_ports_.erase(cluster_id);
  mariadb_[cluster_id] = std::shared_ptr<MariadbSupervisor>(std::move(*started));
  open_ports_[cluster_id] = *bound;
  return *bound;
}

absl::StatusOr<int> ClusterRuntime::SealMariadb(const std::string& cluster_id, int port) {
  std::shared_ptr<MariadbSupervisor> closing;
  int recorded = port;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (opening_.count(cluster_id)) {
      return absl::FailedPreconditionError("cluster is being opened");
    }
    closing = TakeMariadbLocked(cluster_id);
    if (auto p = open_ports_.find(cluster_id); p != open_ports_.end()) {
      recorded = p->second;
      open_ports_.erase(p);
    } else if (auto s = sealed_ports_.find(cluster_id); s != sealed_ports_.end()) {
      recorded = s->second;
    }
    // The port stays the cluster's: the next open binds it again.
    sealed_ports_[cluster_id] = recorded;
  }
  // mariadbd has no way to tell clients why: its connections end and new ones are refused
  // until the cluster opens again (the API's state_message says why).
  if (closing) closing->Stop();
  return recorded;
}

void ClusterRuntime::RotateMariadbDataKeys() {
  std::vector<std::pair<std::string, std::shared_ptr<MariadbSupervisor>>> open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, m] : mariadb_) open.emplace_back(id, m);
  }
  for (const auto& [id, m] : open) {
    // A new current data key is MariaDB's new key version: innodb_encryption_rotate_key_age
    // makes its background threads re-encrypt pages under it.
    auto rotated = m->dictionary().RotateIfOlderThan(options_.data_key_rotation_seconds,
                                                     static_cast<uint64_t>(time(nullptr)));
    if (!rotated.ok()) {
      LogWarn(
          "cluster.data_key_rotation_failed",
          absl::StrCat("cluster ", id, ": data-key rotation failed: ", rotated.status().message()),
          {{"cluster_id", id}});
    } else if (*rotated) {
      uint32_t current = m->dictionary().Current()->id;
      LogInfo("cluster.data_key_rotated",
              absl::StrCat("cluster ", id, ": new data key ", current,
                           " (a new MariaDB key version); MariaDB re-encrypts its pages under it "
                           "in the background"),
              {{"cluster_id", id}, {"data_key_id", current}});
    }
  }
}

}  // namespace keyward
