#pragma once
// Durable records of the control plane behind one interface, so SQLite (embedded default) and
// PostgreSQL (several control-plane replicas) plug in the same way.
// Implementations are thread-safe. Every method is one transaction: a multi-record change
// (a project with its owner membership and escrow key, a member with its token) is all or
// nothing. Uniqueness rules are enforced by the store's constraints, so concurrent requests
// cannot both win: the loser gets AlreadyExists.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/resources.h"

namespace keyward {

struct TokenGrant {
  std::string token_sha256_hex;
  int64_t expires_at = 0;  // unix seconds; 0 = never
};

struct Page {
  int64_t offset = 0;
  int64_t limit = 100;
};

struct StoredResponse {
  int status = 0;
  std::string body;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Organization and its first owner, once; AlreadyExists afterwards.
  virtual absl::Status Bootstrap(const std::string& org_id, const std::string& org_name,
                                 const User& owner, const TokenGrant& token) = 0;
  virtual absl::StatusOr<std::optional<std::string>> OrganizationId() = 0;
  // The user a token belongs to, if it exists and has not expired at `now`.
  virtual absl::StatusOr<std::optional<User>> UserByToken(const std::string& token_sha256_hex,
                                                          int64_t now) = 0;

  virtual absl::Status CreateProject(const Project& project, const std::string& owner_user_id,
                                     const std::optional<EncryptionKey>& escrow_key) = 0;
  virtual absl::StatusOr<std::optional<Project>> GetProject(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<Project>> ListProjects(
      const std::string& org_id, const std::optional<std::string>& member, Page page) = 0;
  virtual absl::Status RenameProject(const std::string& id, const std::string& name) = 0;
  // "" when the user has no role in the project.
  virtual absl::StatusOr<std::string> ProjectRole(const std::string& project_id,
                                                  const std::string& user_id) = 0;
  virtual absl::Status AddMember(const std::string& project_id, const User& user,
                                 const std::string& role, const TokenGrant& token) = 0;

  virtual absl::Status InsertKey(const EncryptionKey& key) = 0;
  virtual absl::StatusOr<std::optional<EncryptionKey>> GetKey(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<EncryptionKey>> ListKeys(const std::string& project_id,
                                                              Page page) = 0;
  virtual absl::Status UpdateKeyState(const std::string& id, const std::string& state,
                                      const std::string& message, int64_t now) = 0;

  virtual absl::Status InsertCluster(const Cluster& cluster) = 0;
  virtual absl::StatusOr<std::optional<Cluster>> GetCluster(const std::string& id) = 0;
  // All clusters when project_id is empty.
  virtual absl::StatusOr<std::vector<Cluster>> ListClusters(const std::string& project_id,
                                                            Page page) = 0;
  // Writes state, state_message, port and backup policy of an existing cluster.
  virtual absl::Status UpdateCluster(const Cluster& cluster) = 0;

  virtual absl::Status AppendAudit(const AuditEvent& event) = 0;
  virtual absl::StatusOr<std::vector<AuditEvent>> ListAudit(const std::string& project_id,
                                                            int64_t since_ms, int64_t until_ms,
                                                            Page page) = 0;

  // Idempotency keys: the first response to (user, key, route) is kept and replayed.
  virtual absl::StatusOr<std::optional<StoredResponse>> GetIdempotent(const std::string& user_id,
                                                                      const std::string& key,
                                                                      const std::string& route) = 0;
  virtual absl::Status PutIdempotent(const std::string& user_id, const std::string& key,
                                     const std::string& route, const StoredResponse& response) = 0;
};

// SQLite in WAL mode at `path`; numbered migrations applied at open.
absl::StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteMetadataStore(const std::string& path);

}  // namespace keyward
