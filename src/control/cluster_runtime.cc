#include "control/cluster_runtime.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "mariadb/gcache_dir.h"
#include "mariadb/mariadb_supervisor.h"
#include "storage/storage_error.h"
#include "util/bytes.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {

ClusterRuntime::ClusterRuntime(ClusterRuntimeOptions options, RespServer& resp,
                               std::shared_ptr<SharedStorageResources> shared)
    : options_(std::move(options)), resp_(resp), shared_(std::move(shared)) {}

ClusterRuntime::~ClusterRuntime() { Shutdown(); }

std::string ClusterRuntime::Dir(const std::string& id) const {
  return options_.data_dir + "/clusters/" + id;
}

void ClusterRuntime::SetEncryptionInfo(std::function<std::string(const std::string&)> info) {
  encryption_info_ = std::move(info);
}

absl::Status ClusterRuntime::ChangePassword(const std::string& cluster_id,
                                            const std::string& password_sha256_hex) {
  auto password = HexDecode(password_sha256_hex);
  if (!password.ok() || password->size() != 32) {
    return absl::InvalidArgumentError("a cluster password hash is 64 hex digits");
  }
  absl::Status st = resp_.ChangePassword(cluster_id, *password);
  return absl::IsNotFound(st) ? absl::OkStatus() : st;
}

std::shared_ptr<ClusterEndpoint> ClusterRuntime::NewEndpoint(const std::string& cluster_id,
                                                             const std::string& password_sha256_hex,
                                                             Durability durability) {
  auto endpoint = std::make_shared<ClusterEndpoint>();
  endpoint->cluster_id = cluster_id;
  endpoint->durability = durability;
  auto password = HexDecode(password_sha256_hex);
  // A record without a valid hash gets an endpoint no password opens (fails closed).
  endpoint->password_sha256 = password.ok() ? *password : std::string(32, '\0');
  if (encryption_info_) {
    endpoint->encryption_info = [info = encryption_info_, cluster_id] { return info(cluster_id); };
  }
  return endpoint;
}

absl::StatusOr<int> ClusterRuntime::Open(const std::string& cluster_id,
                                         const std::string& password_sha256_hex,
                                         std::shared_ptr<MasterKeyProvider> provider, int port,
                                         bool create, Durability durability,
                                         const std::string& initial_password) {
  RETURN_IF_ERROR(HexDecode(password_sha256_hex).status());
  if (EngineOf(cluster_id) == ClusterEngine::kMariadb) {
    return OpenMariadb(cluster_id, std::move(provider), port, create, initial_password);
  }
  std::optional<int> sealed_port;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.count(cluster_id) || opening_.count(cluster_id)) {
      return absl::FailedPreconditionError("cluster is already open or being opened");
    }
    opening_.insert(cluster_id);
    if (auto it = sealed_ports_.find(cluster_id); it != sealed_ports_.end())
      sealed_port = it->second;
  }
  auto done_opening = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    opening_.erase(cluster_id);
  };
  // The slow part — an unwrap through the KMS and RocksDB recovery — runs without the lock.
  ClusterStoreOptions so;
  so.dir = Dir(cluster_id);
  so.cluster_id = cluster_id;
  so.data_key_rotation_seconds = options_.data_key_rotation_seconds;
  absl::StatusOr<std::unique_ptr<ClusterStore>> opened =
      create ? ClusterStore::Create(so, *provider, shared_)
             : ClusterStore::Open(so, *provider, shared_);
  if (!opened.ok()) {
    done_opening();
    return opened.status();
  }
  std::shared_ptr<ClusterStore> store(std::move(*opened));
  absl::StatusOr<int> bound = 0;
  if (sealed_port) {
    absl::Status st = resp_.SetStore(cluster_id, store, "");
    bound = st.ok() ? absl::StatusOr<int>(*sealed_port) : absl::StatusOr<int>(st);
  } else {
    auto endpoint = NewEndpoint(cluster_id, password_sha256_hex, durability);
    endpoint->store = store;
    bound = BindRecordedPort(cluster_id, endpoint, port);
  }
  if (!bound.ok()) {
    done_opening();
    return bound.status();
  }
  std::lock_guard<std::mutex> lock(mu_);
  opening_.erase(cluster_id);
  sealed_ports_.erase(cluster_id);
  open_[cluster_id] = Handle{std::move(store), std::move(provider), durability};
  open_ports_[cluster_id] = *bound;
  return *bound;
}

absl::StatusOr<int> ClusterRuntime::BindRecordedPort(const std::string& cluster_id,
                                                     std::shared_ptr<ClusterEndpoint> endpoint,
                                                     int port) {
  auto bound = resp_.AddCluster(endpoint, options_.cluster_host, port);
  if (bound.ok() || port == 0) return bound;
  if (options_.allow_port_change) {
    LogWarn("cluster.port_changed",
            absl::StrCat("cluster ", cluster_id, ": port ", port, " is taken (",
                         bound.status().message(), "); --allow-port-change: moving it"),
            {{"cluster_id", cluster_id}, {"old_port", port}});
    return resp_.AddCluster(endpoint, options_.cluster_host, 0);
  }
  return MarkStorageError(absl::UnavailableError(absl::StrCat(
      "its port ", port, " on ", options_.cluster_host, " is taken by another process (",
      bound.status().message(),
      "); its clients connect there, so it is not moved silently: free the port (it is retried "
      "at every storage check) or restart keyward with --allow-port-change")));
}

void ClusterRuntime::Close(const std::string& cluster_id) {
  Handle closing;
  std::shared_ptr<MariadbSupervisor> mariadb;
  {
    std::lock_guard<std::mutex> lock(mu_);
    mariadb = TakeMariadbLocked(cluster_id);
    if (auto it = open_.find(cluster_id); it != open_.end()) {
      closing = std::move(it->second);
      open_.erase(it);
    }
    open_ports_.erase(cluster_id);
    sealed_ports_.erase(cluster_id);
  }
  if (mariadb) mariadb->Stop();  // clean shutdown, then its keys are wiped
  if (closing.store) closing.store->StopBackgroundWork();  // a re-encryption lets go of it
  resp_.RemoveCluster(cluster_id);  // returns once no connection uses the store
  ReleaseAndWait(std::move(closing));
}

// Drops the handle and waits (bounded) until no background job holds the store any more, so
// that the store is flushed, closed and its keys wiped before the caller goes on (to shred the
// directory, reopen it, or report the cluster closed).
void ClusterRuntime::ReleaseAndWait(Handle closing) {
  std::weak_ptr<ClusterStore> gone = closing.store;
  closing = Handle();
  for (int i = 0; i < 500 && !gone.expired(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

absl::StatusOr<int> ClusterRuntime::Seal(const std::string& cluster_id,
                                         const std::string& password_sha256_hex, int port,
                                         const std::string& message, Durability durability) {
  if (EngineOf(cluster_id) == ClusterEngine::kMariadb) return SealMariadb(cluster_id, port);
  Handle closing;
  bool serving = false;
  int bound_port = port;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (opening_.count(cluster_id)) {
      return absl::FailedPreconditionError("cluster is being opened");
    }
    if (auto it = open_.find(cluster_id); it != open_.end()) {
      closing = std::move(it->second);
      open_.erase(it);
      serving = true;
      bound_port = open_ports_[cluster_id];
      open_ports_.erase(cluster_id);
    } else if (auto s = sealed_ports_.find(cluster_id); s != sealed_ports_.end()) {
      serving = true;
      bound_port = s->second;
    }
  }
  if (closing.store) closing.store->StopBackgroundWork();
  if (serving) {
    RETURN_IF_ERROR(resp_.SetStore(cluster_id, nullptr, message));
  } else {
    auto endpoint = NewEndpoint(cluster_id, password_sha256_hex, durability);
    endpoint->unavailable_message = message;
    auto bound = BindRecordedPort(cluster_id, endpoint, port);
    if (!bound.ok()) return bound.status();
    bound_port = *bound;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    sealed_ports_[cluster_id] = bound_port;
  }
  ReleaseAndWait(std::move(closing));  // outside the lock: RocksDB closes, keys are wiped
  return bound_port;
}

absl::StatusOr<RepairReport> ClusterRuntime::Repair(const std::string& cluster_id,
                                                    std::shared_ptr<MasterKeyProvider> provider) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.count(cluster_id) || opening_.count(cluster_id)) {
      return absl::FailedPreconditionError("cluster is open; close or seal it before a repair");
    }
    opening_.insert(cluster_id);  // no Open while the repair runs
  }
  ClusterStoreOptions so;
  so.dir = Dir(cluster_id);
  so.cluster_id = cluster_id;
  so.data_key_rotation_seconds = options_.data_key_rotation_seconds;
  auto report = ClusterStore::Repair(so, *provider, shared_);
  std::lock_guard<std::mutex> lock(mu_);
  opening_.erase(cluster_id);
  return report;
}

std::optional<uint64_t> ClusterRuntime::FreeBytes() const {
  struct statvfs st {};
  if (statvfs(options_.data_dir.c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

bool ClusterRuntime::IsOpen(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.count(cluster_id) > 0 || mariadb_.count(cluster_id) > 0;
}

std::optional<ClusterRuntime::Handle> ClusterRuntime::Get(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(cluster_id);
  if (it == open_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> ClusterRuntime::OpenClusterIds() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, h] : open_) ids.push_back(id);
  for (const auto& [id, m] : mariadb_) ids.push_back(id);
  return ids;
}

std::vector<std::pair<std::string, std::shared_ptr<ClusterStore>>> ClusterRuntime::StoresWith(
    Durability durability) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::string, std::shared_ptr<ClusterStore>>> out;
  for (const auto& [id, h] : open_) {
    if (h.durability == durability) out.emplace_back(id, h.store);
  }
  return out;
}

absl::Status ClusterRuntime::Shred(const std::string& cluster_id) {
  Close(cluster_id);
  std::string dir = Dir(cluster_id);
  // The wrapped keys go first: once the dictionary is gone the files are unreadable noise,
  // whatever happens to the rest of the deletion.
  std::string dict = dir + "/" + KeyDictionary::kFileName;
  if (unlink(dict.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("cannot remove ", dict, ": ", ErrnoText(errno)));
  }
  if (access(dir.c_str(), F_OK) == 0) RETURN_IF_ERROR(FsyncDirectory(dir));
  // A Galera cluster's gcaches (plaintext write sets in /dev/shm) go too, even when its nodes
  // are not running (a paused cluster, or a crash left them).
  RemoveGaleraGcaches(cluster_id, options_.mariadb_run_as);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

void ClusterRuntime::RotateDataKeys() {
  RotateMariadbDataKeys();
  for (const std::string& id : OpenClusterIds()) {
    auto h = Get(id);
    if (!h) continue;
    auto rotated = h->store->RotateDataKeyIfDue();
    if (!rotated.ok()) {
      LogWarn(
          "cluster.data_key_rotation_failed",
          absl::StrCat("cluster ", id, ": data-key rotation failed: ", rotated.status().message()),
          {{"cluster_id", id}});
    } else if (*rotated) {
      LogInfo("cluster.data_key_rotated",
              absl::StrCat("cluster ", id, ": new data key ", h->store->dictionary().Current()->id,
                           " for new files"),
              {{"cluster_id", id}, {"data_key_id", h->store->dictionary().Current()->id}});
    }
  }
}

void ClusterRuntime::Shutdown() {
  std::map<std::string, Handle> closing;
  std::map<std::string, std::shared_ptr<MariadbSupervisor>> mariadb;
  std::vector<std::string> served;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing.swap(open_);
    mariadb.swap(mariadb_);
    for (const auto& [id, p] : open_ports_) served.push_back(id);
    for (const auto& [id, p] : sealed_ports_) served.push_back(id);
    open_ports_.clear();
    sealed_ports_.clear();
  }
  for (auto& [id, handle] : closing) {
    if (handle.store) handle.store->StopBackgroundWork();  // re-encryptions let go
  }
  for (const auto& id : served) resp_.RemoveCluster(id);
  closing.clear();
  // Every mariadbd shuts down cleanly at once (each waits for its own): a server with many
  // clusters stops in the time of the slowest, not of all of them.
  std::vector<std::thread> stopping;
  for (auto& [id, m] : mariadb) stopping.emplace_back([m = m] { m->Stop(); });
  for (auto& t : stopping) t.join();
}

}  // namespace keyward
