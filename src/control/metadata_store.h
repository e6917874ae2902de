#pragma once
// Durable records of the control plane. One interface, so SQLite (embedded default) and
// PostgreSQL (several control-plane replicas) plug in the same way.
// Implementations are thread-safe; each call is one transaction.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace keyward {

struct ClusterRecord {
  std::string id;
  std::string name;
  std::string state;  // creating | available | deleting
  int port = 0;
  std::string password_sha256_hex;
  int64_t created_at = 0;  // unix seconds
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;
  // AlreadyExists when the name is taken.
  virtual absl::Status InsertCluster(const ClusterRecord& record) = 0;
  virtual absl::Status UpdateCluster(const ClusterRecord& record) = 0;
  virtual absl::Status DeleteCluster(const std::string& id) = 0;
  virtual absl::StatusOr<std::optional<ClusterRecord>> GetCluster(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<ClusterRecord>> ListClusters() = 0;
};

// SQLite in WAL mode at `path`, schema migrations applied at open.
absl::StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteMetadataStore(const std::string& path);

}  // namespace keyward
