#pragma once
// The SQLite MetadataStore behind OpenSqliteMetadataStore, shared by its files, one per area:
// metadata_store.cc (migrations, row readers, opening), metadata_accounts.cc (organization,
// users, tokens), metadata_projects.cc (projects, members), metadata_keys.cc,
// metadata_clusters.cc, metadata_audit.cc, metadata_idempotency.cc. Not an API: use
// MetadataStore.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/metadata_store.h"
#include "control/sqlite_db.h"

namespace keyward::metadata_internal {

// Column lists and row readers (metadata_store.cc): a row read with k*Cols reads with *Row.
extern const char kProjectCols[];
extern const char kUserCols[];
extern const char kKeyCols[];
extern const char kClusterCols[];
User UserRow(const SqlRow& r);
Project ProjectRow(const SqlRow& r);
EncryptionKey KeyRow(const SqlRow& r);
Cluster ClusterRow(const SqlRow& r);
// A membership row whose change leaves its project (the next parameter) with a project_owner.
extern const char kNotLastOwner[];

class SqliteMetadataStore : public MetadataStore {
 public:
  explicit SqliteMetadataStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  // metadata_store.cc
  absl::Status Migrate();
  // metadata_accounts.cc
  absl::Status Bootstrap(const std::string& org_id, const std::string& org_name, const User& owner,
                         const TokenGrant& token) override;
  absl::StatusOr<std::optional<std::string>> OrganizationId() override;
  absl::StatusOr<std::optional<User>> UserByToken(const std::string& hash, int64_t now) override;
  absl::StatusOr<std::optional<User>> GetUser(const std::string& id) override;
  absl::Status SetProjectCreator(const std::string& user_id, bool granted) override;
  absl::Status InsertToken(const std::string& user_id, const TokenGrant& token,
                           int64_t now) override;
  absl::StatusOr<std::vector<TokenInfo>> ListTokens(const std::string& user_id) override;
  absl::StatusOr<std::optional<TokenInfo>> GetToken(const std::string& id) override;
  absl::StatusOr<bool> DeleteToken(const std::string& id, const std::string& user_id) override;
  absl::Status ReplaceOwnerToken(const std::string& user_id, const TokenGrant& token,
                                 int64_t now) override;
  // metadata_projects.cc
  absl::StatusOr<std::vector<Member>> ListMembers(const std::string& project_id,
                                                  Page page) override;
  absl::StatusOr<bool> ChangeMemberRole(const std::string& project_id, const std::string& user_id,
                                        const std::string& from, const std::string& to) override;
  absl::StatusOr<bool> RemoveMember(const std::string& project_id, const std::string& user_id,
                                    const std::string& role) override;
  absl::Status CreateProject(const Project& p, const std::string& owner_user_id,
                             const std::optional<EncryptionKey>& escrow_key) override;
  absl::StatusOr<std::optional<Project>> GetProject(const std::string& id) override;
  absl::StatusOr<std::vector<Project>> ListProjects(const std::string& org_id,
                                                    const std::optional<std::string>& member,
                                                    Page page) override;
  absl::Status RenameProject(const std::string& id, const std::string& name) override;
  absl::StatusOr<std::string> ProjectRole(const std::string& project_id,
                                          const std::string& user_id) override;
  absl::Status AddMember(const std::string& project_id, const User& user, const std::string& role,
                         const TokenGrant& token) override;
  // metadata_keys.cc
  absl::Status InsertKey(const EncryptionKey& k) override;
  absl::StatusOr<std::optional<EncryptionKey>> GetKey(const std::string& id) override;
  absl::StatusOr<std::vector<EncryptionKey>> ListKeys(const std::string& project_id,
                                                      Page page) override;
  absl::Status UpdateKeyState(const std::string& id, const std::string& state,
                              const std::string& message, int64_t now) override;
  absl::StatusOr<bool> TransitionKey(const std::string& id, const std::string& from,
                                     const std::string& to, const std::string& message,
                                     int64_t now) override;
  absl::Status RecordKeyCheck(const std::string& id, int64_t at, const std::string& error,
                              const std::string& current_version) override;
  absl::StatusOr<bool> SetKeyTestResult(const EncryptionKey& tested, const std::string& state,
                                        const std::string& message, int64_t now) override;
  absl::StatusOr<std::vector<Cluster>> ChangeKeySettingsIfUnused(const EncryptionKey& k) override;
  absl::StatusOr<std::vector<Cluster>> DeleteKeyIfUnused(const std::string& id) override;
  // metadata_clusters.cc
  absl::Status InsertCluster(const Cluster& c) override;
  absl::Status InsertClusterRow(const Cluster& c);
  absl::StatusOr<std::optional<Cluster>> GetCluster(const std::string& id) override;
  absl::StatusOr<std::vector<Cluster>> ListClusters(const std::string& project_id,
                                                    Page page) override;
  absl::StatusOr<bool> TransitionCluster(const std::string& id,
                                         const std::vector<std::string>& from,
                                         const ClusterTransition& to) override;
  absl::StatusOr<bool> SetClusterBackupPolicy(const std::string& id, const std::string& policy_json,
                                              int64_t now) override;
  absl::StatusOr<int64_t> AdoptDurability(const std::string& durability) override;
  absl::Status RecordClusterKeyCheck(const std::string& key_id, int64_t at,
                                     const std::string& error) override;
  absl::Status RecordClusterWrap(const std::string& id, const std::string& key_version,
                                 int64_t wrapped_at, const std::string& dictionary_key_id) override;
  absl::Status RecordClusterDataKeys(const std::string& id,
                                     const std::string& data_key_ids_json) override;
  absl::Status RecordClusterReencrypt(const std::string& id,
                                      const std::string& reencrypt_json) override;
  absl::StatusOr<bool> StartClusterReencrypt(const std::string& id,
                                             const std::string& running_json) override;
  absl::StatusOr<bool> SetClusterPassword(const std::string& id,
                                          const std::string& password_sha256_hex,
                                          int64_t now) override;
  // metadata_audit.cc
  absl::Status AppendAudit(const AuditEvent& e) override;
  using MetadataStore::ListAudit;
  absl::StatusOr<std::vector<AuditEvent>> ListAudit(const std::string& project_id,
                                                    const AuditFilter& f, Page page) override;
  // metadata_idempotency.cc
  absl::StatusOr<IdempotencyClaim> ClaimIdempotent(const std::string& user_id,
                                                   const std::string& key, const std::string& route,
                                                   const std::string& body_sha256_hex, int64_t now,
                                                   int64_t stale_after_s) override;
  absl::Status FinishIdempotent(const std::string& user_id, const std::string& key,
                                const std::string& route, int64_t generation,
                                const StoredResponse& response) override;
  absl::Status RefreshIdempotent(const std::string& user_id, const std::string& key,
                                 const std::string& route, int64_t generation,
                                 int64_t now) override;
  absl::Status ReleaseIdempotent(const std::string& user_id, const std::string& key,
                                 const std::string& route, int64_t generation) override;

 private:
  // metadata_store.cc
  absl::StatusOr<bool> ExecChanged(const std::string& sql, const std::vector<SqlValue>& params);
  // metadata_accounts.cc
  absl::Status InsertUserAndToken(const User& u, const TokenGrant& t);
  absl::Status InsertTokenRow(const std::string& user_id, const TokenGrant& t, int64_t now);
  // metadata_keys.cc
  absl::StatusOr<std::vector<Cluster>> LiveClustersOfKey(const std::string& key_id);
  static absl::Status KeyGone(const std::string& id);
  absl::Status InsertKeyRow(const EncryptionKey& k);
  std::unique_ptr<SqliteDb> db_;
};

}  // namespace keyward::metadata_internal
