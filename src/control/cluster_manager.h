#pragma once
// Creates, opens, lists and deletes clusters: the metadata record, the encrypted store under
// `data_dir/clusters/<id>/` and the cluster's RESP endpoint, kept consistent across crashes.
//
// Crash safety: a record is written `creating` before any file exists and becomes `available`
// only once the store and endpoint work; deletion marks `deleting`, shreds the key dictionary
// first, then removes files and the record. Start() finishes or undoes whatever a crash left.
// Thread-safe.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/metadata_store.h"
#include "kms/master_key_provider.h"
#include "server/resp_server.h"
#include "storage/cluster_store.h"

namespace keyward {

struct ClusterManagerOptions {
  std::string data_dir;
  std::string cluster_host = "127.0.0.1";
  uint64_t data_key_rotation_seconds = 7 * 24 * 3600;
};

struct ClusterView {
  ClusterRecord record;
  std::string endpoint;  // host:port
  std::string password;  // only set in the answer to Create
};

class ClusterManager {
 public:
  ClusterManager(ClusterManagerOptions options, MetadataStore& metadata,
                 MasterKeyProvider& master_key, RespServer& resp,
                 std::shared_ptr<SharedStorageResources> shared);
  ~ClusterManager();

  // Recovers from a crash and opens every available cluster.
  absl::Status Start();
  absl::StatusOr<ClusterView> Create(const std::string& name);
  absl::StatusOr<std::vector<ClusterView>> List();
  absl::StatusOr<ClusterView> Get(const std::string& id);
  absl::Status Delete(const std::string& id);
  // Rotates data keys that are due; called from a timer.
  void RotateDataKeys();
  // Flushes and closes every cluster.
  void Shutdown();

 private:
  std::string ClusterDir(const std::string& id) const;
  absl::Status OpenAndServe(ClusterRecord& record, bool create);
  absl::Status Shred(const std::string& id);
  ClusterView View(const ClusterRecord& r) const;

  ClusterManagerOptions options_;
  MetadataStore& metadata_;
  MasterKeyProvider& master_key_;
  RespServer& resp_;
  std::shared_ptr<SharedStorageResources> shared_;
  std::mutex mu_;  // serialises lifecycle changes
  std::map<std::string, std::shared_ptr<ClusterStore>> open_;
};

// Names: 1-63 of [a-z0-9-], starting with a letter or digit.
absl::Status ValidateClusterName(const std::string& name);

}  // namespace keyward
