#pragma once
// The control plane: organizations, projects, encryption keys and clusters, with every rule of
// the CMEK reference enforced here — so the REST API, the CLI and the console all obey them.
//
// Every method takes the acting user and checks authorisation first (fails closed). Errors are
// Status codes the API maps to 4xx/5xx, with messages that say what to do instead:
//   InvalidArgument 400, PermissionDenied 403, NotFound 404, AlreadyExists/FailedPrecondition 409.
// Every key and cluster operation is audited (who, what, key id and version, result).
// Thread-safe; cluster lifecycle changes are serialised.

#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/cluster_runtime.h"
#include "control/key_instructions.h"
#include "control/metadata_store.h"
#include "kms/kms_factory.h"

namespace keyward {

struct KeyRequest {
  std::string provider;
  std::string region;
  nlohmann::json azure;  // key_vault_name, key_name_prefix, [subscription_id, resource_group]
  nlohmann::json aws;    // key_arn
};

struct KeyCheck {
  std::string step;
  bool ok = false;
  std::string message;
};

struct KeyTestOutcome {
  EncryptionKey key;
  std::vector<KeyCheck> checks;
};

struct ClusterRequest {
  std::string name;
  std::string cloud_provider;
  std::string region;
  std::string tier;
};

struct ClusterCreated {
  Cluster cluster;
  std::string password;  // shown once
};

struct BackupPolicy {
  std::string schedule;  // "daily" | "hourly" | "weekly" | cron-like "HH:MM"
  int retention_days = 7;
  bool dual_region = false;
  std::string secondary_region;
};

class ControlPlane {
 public:
  ControlPlane(MetadataStore& metadata, KmsFactory& kms, ClusterRuntime& runtime,
               ServiceIdentity identity, std::function<int64_t()> now_ms = nullptr);

  // First start: the organization, its owner (whose token is returned) and a default non-CMEK
  // project. AlreadyExists when the organization exists.
  absl::StatusOr<std::string> Bootstrap();
  // Finishes or undoes what a crash interrupted, then opens every cluster that should run.
  absl::Status Start();
  absl::StatusOr<User> Authenticate(const std::string& token);

  absl::StatusOr<Project> CreateProject(const User& actor, const std::string& name, bool cmek);
  absl::StatusOr<std::vector<Project>> ListProjects(const User& actor, Page page);
  absl::StatusOr<Project> GetProject(const User& actor, const std::string& id);
  absl::StatusOr<Project> RenameProject(const User& actor, const std::string& id,
                                        const std::string& name);
  // Returns the new user and their token (shown once).
  absl::StatusOr<std::pair<User, std::string>> AddMember(const User& actor,
                                                         const std::string& project_id,
                                                         const std::string& name,
                                                         const std::string& role,
                                                         int64_t token_ttl_seconds);
  absl::StatusOr<std::string> DefaultProjectId();

  absl::StatusOr<EncryptionKey> CreateKey(const User& actor, const std::string& project_id,
                                          const KeyRequest& request);
  absl::StatusOr<std::vector<EncryptionKey>> ListKeys(const User& actor,
                                                      const std::string& project_id, Page page);
  absl::StatusOr<EncryptionKey> GetKey(const User& actor, const std::string& project_id,
                                       const std::string& key_id);
  // "Test encryption key and create": describe + wrap + unwrap through the KMS seam.
  absl::StatusOr<KeyTestOutcome> TestKey(const User& actor, const std::string& project_id,
                                         const std::string& key_id);
  nlohmann::json Instructions(const EncryptionKey& key) const;

  absl::StatusOr<ClusterCreated> CreateCluster(const User& actor, const std::string& project_id,
                                               const ClusterRequest& request);
  absl::StatusOr<std::vector<Cluster>> ListClusters(const User& actor,
                                                    const std::string& project_id, Page page);
  absl::StatusOr<Cluster> GetCluster(const User& actor, const std::string& id);
  absl::StatusOr<Cluster> PauseCluster(const User& actor, const std::string& id);
  absl::StatusOr<Cluster> ResumeCluster(const User& actor, const std::string& id);
  absl::StatusOr<Cluster> DeleteCluster(const User& actor, const std::string& id);
  absl::StatusOr<Cluster> SetBackupPolicy(const User& actor, const std::string& id,
                                          const BackupPolicy& policy);

  absl::StatusOr<std::vector<AuditEvent>> ListAudit(const User& actor,
                                                    const std::string& project_id, int64_t since_ms,
                                                    int64_t until_ms, Page page);

  std::string Endpoint(const Cluster& c) const;

 private:
  enum class Need { kView, kMember, kOwner };
  absl::StatusOr<Project> Authorize(const User& actor, const std::string& project_id, Need need);
  absl::StatusOr<Cluster> LoadCluster(const User& actor, const std::string& id, Need need,
                                      Project* project);
  void Audit(const User* actor, const std::string& project_id, const std::string& action,
             const std::string& target, const EncryptionKey* key, const absl::Status& result,
             const std::string& detail = "", const std::string& key_version = "");
  absl::Status OpenCluster(Cluster& c, bool create);
  absl::Status SetState(Cluster& c, const std::string& state, const std::string& message);
  int64_t Now() const { return now_ms_() / 1000; }

  MetadataStore& metadata_;
  KmsFactory& kms_;
  ClusterRuntime& runtime_;
  ServiceIdentity identity_;
  std::function<int64_t()> now_ms_;
  std::mutex lifecycle_mu_;
};

}  // namespace keyward
