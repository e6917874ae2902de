#include "control/cluster_runtime.h"

#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "util/bytes.h"
#include "util/file_util.h"
#include "util/status_macros.h"

namespace keyward {

ClusterRuntime::ClusterRuntime(ClusterRuntimeOptions options, RespServer& resp,
                               std::shared_ptr<SharedStorageResources> shared)
    : options_(std::move(options)), resp_(resp), shared_(std::move(shared)) {}

ClusterRuntime::~ClusterRuntime() { Shutdown(); }

std::string ClusterRuntime::Dir(const std::string& id) const {
  return options_.data_dir + "/clusters/" + id;
}

absl::StatusOr<int> ClusterRuntime::Open(const std::string& cluster_id,
                                         const std::string& password_sha256_hex,
                                         std::shared_ptr<MasterKeyProvider> provider, int port,
                                         bool create) {
  std::lock_guard<std::mutex> lock(mu_);
  if (open_.count(cluster_id)) return absl::FailedPreconditionError("cluster is already open");
  ClusterStoreOptions so;
  so.dir = Dir(cluster_id);
  so.cluster_id = cluster_id;
  so.data_key_rotation_seconds = options_.data_key_rotation_seconds;
  absl::StatusOr<std::unique_ptr<ClusterStore>> store =
      create ? ClusterStore::Create(so, *provider, shared_)
             : ClusterStore::Open(so, *provider, shared_);
  if (!store.ok()) return store.status();
  auto endpoint = std::make_shared<ClusterEndpoint>();
  endpoint->cluster_id = cluster_id;
  ASSIGN_OR_RETURN(endpoint->password_sha256, HexDecode(password_sha256_hex));
  endpoint->store = std::shared_ptr<ClusterStore>(std::move(*store));
  auto bound = resp_.AddCluster(endpoint, options_.cluster_host, port);
  if (!bound.ok() && port != 0) {
    fprintf(stderr, "keyward: cluster %s: port %d is taken (%s); choosing a new port\n",
            cluster_id.c_str(), port, std::string(bound.status().message()).c_str());
    bound = resp_.AddCluster(endpoint, options_.cluster_host, 0);
  }
  if (!bound.ok()) return bound.status();
  open_[cluster_id] = OpenCluster{endpoint->store, std::move(provider)};
  return *bound;
}

void ClusterRuntime::Close(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  resp_.RemoveCluster(cluster_id);
  open_.erase(cluster_id);  // last reference: the store flushes, closes and wipes its keys
}

bool ClusterRuntime::IsOpen(const std::string& cluster_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.count(cluster_id) > 0;
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
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

void ClusterRuntime::RotateDataKeys() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, c] : open_) {
    auto rotated = c.store->RotateDataKeyIfDue();
    if (!rotated.ok()) {
      fprintf(stderr, "keyward: cluster %s: data-key rotation failed: %s\n", id.c_str(),
              std::string(rotated.status().message()).c_str());
    } else if (*rotated) {
      fprintf(stderr, "keyward: cluster %s: new data key %u for new files\n", id.c_str(),
              c.store->dictionary().Current()->id);
    }
  }
}

void ClusterRuntime::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, c] : open_) resp_.RemoveCluster(id);
  open_.clear();
}

}  // namespace keyward
