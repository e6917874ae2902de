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
  int64_t expires_at = 0;       // unix seconds; 0 = never
  std::string id;               // "t-…"; empty: one is made up
  std::string kind = "member";  // see TokenInfo
};

struct Page {
  int64_t offset = 0;
  int64_t limit = 100;
};

struct StoredResponse {
  int status = 0;
  std::string body;
};

struct IdempotencyClaim {
  enum class Outcome { kClaimed, kReplay, kRunning, kDifferentBody };
  Outcome outcome = Outcome::kClaimed;
  StoredResponse response;  // kReplay only
  // kClaimed: which taking of the key this is (1, then one more at each takeover of a stale
  // claim). Refresh, finish and release name it and do nothing for another generation's claim,
  // so a holder whose claim was taken over cannot finish it for the new holder.
  int64_t generation = 0;
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

  // --- Accounts (members, tokens, organization grants). State changes are compare-and-set. ---
  virtual absl::StatusOr<std::optional<User>> GetUser(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<Member>> ListMembers(const std::string& project_id,
                                                          Page page) = 0;
  // Changes a member's role only while it is still `from`; false when it is not (or the user is
  // no member), and when it would demote the project's last project_owner (checked in the same
  // statement, so two owners demoting each other at once cannot leave the project ownerless).
  virtual absl::StatusOr<bool> ChangeMemberRole(const std::string& project_id,
                                                const std::string& user_id, const std::string& from,
                                                const std::string& to) = 0;
  // Removes the membership while its role is still `role`; a user left in no project (and not
  // an organization owner) loses every token in the same transaction. False when it changed, and
  // when it is the project's last project_owner.
  virtual absl::StatusOr<bool> RemoveMember(const std::string& project_id,
                                            const std::string& user_id,
                                            const std::string& role) = 0;
  virtual absl::Status SetProjectCreator(const std::string& user_id, bool granted) = 0;
  virtual absl::Status InsertToken(const std::string& user_id, const TokenGrant& token,
                                   int64_t now) = 0;
  virtual absl::StatusOr<std::vector<TokenInfo>> ListTokens(const std::string& user_id) = 0;
  virtual absl::StatusOr<std::optional<TokenInfo>> GetToken(const std::string& id) = 0;
  // Deletes the token while it is still `user_id`'s; false when there is no such token.
  virtual absl::StatusOr<bool> DeleteToken(const std::string& id, const std::string& user_id) = 0;
  // In one transaction: every "owner" token of the user deleted, `token` (kind owner) inserted.
  virtual absl::Status ReplaceOwnerToken(const std::string& user_id, const TokenGrant& token,
                                         int64_t now) = 0;

  virtual absl::Status InsertKey(const EncryptionKey& key) = 0;
  virtual absl::StatusOr<std::optional<EncryptionKey>> GetKey(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<EncryptionKey>> ListKeys(const std::string& project_id,
                                                              Page page) = 0;
  virtual absl::Status UpdateKeyState(const std::string& id, const std::string& state,
                                      const std::string& message, int64_t now) = 0;
  // Compare-and-set of a key record's state; false when it was not `from`.
  virtual absl::StatusOr<bool> TransitionKey(const std::string& id, const std::string& from,
                                             const std::string& to, const std::string& message,
                                             int64_t now) = 0;
  // The outcome of a key test, written only while the record still has the settings that were
  // tested (key_name and config_json); false when they changed meanwhile.
  virtual absl::StatusOr<bool> SetKeyTestResult(const EncryptionKey& tested,
                                                const std::string& state,
                                                const std::string& message, int64_t now) = 0;
  // Replaces key_name, config_json, state, status_message and updated_at of the record `key.id`
  // (and forgets the monitor's last check), in one transaction with the check that no cluster
  // outside state deleted uses it. Returns those clusters, changing nothing, when some do; an
  // empty list when the change was made. NotFound when the record does not exist.
  virtual absl::StatusOr<std::vector<Cluster>> ChangeKeySettingsIfUnused(
      const EncryptionKey& key) = 0;
  // Removes the record in one transaction with the same check; same answers.
  virtual absl::StatusOr<std::vector<Cluster>> DeleteKeyIfUnused(const std::string& id) = 0;
  virtual absl::Status RecordKeyCheck(const std::string& id, int64_t at, const std::string& error,
                                      const std::string& current_version) = 0;

  // FailedPrecondition, inserting nothing, unless the cluster's key record exists and is active
  // (checked in the insert's transaction: see DeleteKeyIfUnused).
  virtual absl::Status InsertCluster(const Cluster& cluster) = 0;
  virtual absl::StatusOr<std::optional<Cluster>> GetCluster(const std::string& id) = 0;
  // All clusters when project_id is empty.
  virtual absl::StatusOr<std::vector<Cluster>> ListClusters(const std::string& project_id,
                                                            Page page) = 0;
  // Compare-and-set: moves the cluster to `to` only while its stored state is one of `from`
  // (UPDATE … WHERE state IN (…)). Returns false, changing nothing, when it was not.
  virtual absl::StatusOr<bool> TransitionCluster(const std::string& id,
                                                 const std::vector<std::string>& from,
                                                 const ClusterTransition& to) = 0;
  // Writes only the password hash; false when the cluster is deleting or deleted.
  virtual absl::StatusOr<bool> SetClusterPassword(const std::string& id,
                                                  const std::string& password_sha256_hex,
                                                  int64_t now) = 0;
  // Writes only the backup policy; false when the cluster is deleting or deleted.
  virtual absl::StatusOr<bool> SetClusterBackupPolicy(const std::string& id,
                                                      const std::string& policy_json,
                                                      int64_t now) = 0;
  // Gives every cluster without a stored durability (created before it was stored) this one;
  // returns how many changed.
  virtual absl::StatusOr<int64_t> AdoptDurability(const std::string& durability) = 0;
  // Each writes only its own columns of ClusterEncryption, so the monitor, re-wraps and
  // re-encryption never overwrite one another (or a state change).
  virtual absl::Status RecordClusterKeyCheck(const std::string& key_id, int64_t at,
                                             const std::string& error) = 0;
  virtual absl::Status RecordClusterWrap(const std::string& id, const std::string& key_version,
                                         int64_t wrapped_at,
                                         const std::string& dictionary_key_id) = 0;
  virtual absl::Status RecordClusterDataKeys(const std::string& id,
                                             const std::string& data_key_ids_json) = 0;
  virtual absl::Status RecordClusterReencrypt(const std::string& id,
                                              const std::string& reencrypt_json) = 0;
  // Compare-and-set: records `running_json` only when no re-encryption is recorded as running
  // (and the cluster is not deleted); false when one is, so two requests never start two.
  virtual absl::StatusOr<bool> StartClusterReencrypt(const std::string& id,
                                                     const std::string& running_json) = 0;

  virtual absl::Status AppendAudit(const AuditEvent& event) = 0;
  virtual absl::StatusOr<std::vector<AuditEvent>> ListAudit(const std::string& project_id,
                                                            const AuditFilter& filter,
                                                            Page page) = 0;
  absl::StatusOr<std::vector<AuditEvent>> ListAudit(const std::string& project_id, int64_t since_ms,
                                                    int64_t until_ms, Page page) {
    AuditFilter f;
    f.since_ms = since_ms;
    f.until_ms = until_ms;
    return ListAudit(project_id, f, page);
  }

  // Idempotency keys, scoped per (user, key, route). The first request claims the key in one
  // transaction (so two concurrent duplicates never both run), recording the SHA-256 of its
  // body; its answer is stored when it finishes. A later request with the key gets the stored
  // answer, kRunning while the first still runs, or kDifferentBody when its body differs. A
  // claim left running longer than `stale_after_s` (its server died) is taken over.
  virtual absl::StatusOr<IdempotencyClaim> ClaimIdempotent(const std::string& user_id,
                                                           const std::string& key,
                                                           const std::string& route,
                                                           const std::string& body_sha256_hex,
                                                           int64_t now, int64_t stale_after_s) = 0;
  // Stores the answer of the running claim of `generation`. FailedPrecondition (nothing stored)
  // when that claim was taken over or is gone.
  virtual absl::Status FinishIdempotent(const std::string& user_id, const std::string& key,
                                        const std::string& route, int64_t generation,
                                        const StoredResponse& response) = 0;
  // Moves the running claim of `generation`'s time to `now`, so a request that runs long is not
  // taken for one whose server died (control/idempotency_lease.h). FailedPrecondition (no
  // change) when that claim is no longer running: finished, released or taken over.
  virtual absl::Status RefreshIdempotent(const std::string& user_id, const std::string& key,
                                         const std::string& route, int64_t generation,
                                         int64_t now) = 0;
  // Drops the running claim of `generation` (the request failed: a retry with the key runs
  // again); OK and no change when it is another generation's.
  virtual absl::Status ReleaseIdempotent(const std::string& user_id, const std::string& key,
                                         const std::string& route, int64_t generation) = 0;
};

// SQLite in WAL mode at `path`; numbered migrations applied at open.
absl::StatusOr<std::unique_ptr<MetadataStore>> OpenSqliteMetadataStore(const std::string& path);

}  // namespace keyward
