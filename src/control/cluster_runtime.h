#pragma once
// The data-plane side of clusters: opens a cluster's encrypted store under the master-key
// provider of its encryption key, serves it on its RESP endpoint, closes it (wiping its keys from
// memory) and crypto-shreds it. Holds no records: the control plane decides, this executes.
// Thread-safe.

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "kms/master_key_provider.h"
#include "server/resp_server.h"
#include "storage/cluster_store.h"

namespace keyward {

struct ClusterRuntimeOptions {
  std::string data_dir;
  std::string cluster_host = "127.0.0.1";
  uint64_t data_key_rotation_seconds = 7 * 24 * 3600;
};

class ClusterRuntime {
 public:
  ClusterRuntime(ClusterRuntimeOptions options, RespServer& resp,
                 std::shared_ptr<SharedStorageResources> shared);
  ~ClusterRuntime();

  // Creates (create=true) or opens the store — one unwrap through `provider` — and serves it on
  // `port` (0 or taken: a free one). Returns the port it serves on.
  absl::StatusOr<int> Open(const std::string& cluster_id, const std::string& password_sha256_hex,
                           std::shared_ptr<MasterKeyProvider> provider, int port, bool create);
  // Stops serving and closes the store; its keys are wiped from memory. No-op when closed.
  void Close(const std::string& cluster_id);
  bool IsOpen(const std::string& cluster_id);
  // Destroys the key dictionary first, then every file. Closes the cluster first.
  absl::Status Shred(const std::string& cluster_id);
  void RotateDataKeys();
  void Shutdown();
  const std::string& host() const { return options_.cluster_host; }

 private:
  struct OpenCluster {
    std::shared_ptr<ClusterStore> store;
    std::shared_ptr<MasterKeyProvider> provider;
  };
  std::string Dir(const std::string& id) const;

  ClusterRuntimeOptions options_;
  RespServer& resp_;
  std::shared_ptr<SharedStorageResources> shared_;
  std::mutex mu_;
  std::map<std::string, OpenCluster> open_;
};

}  // namespace keyward
