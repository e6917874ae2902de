#pragma once
// The control plane: organizations, projects, encryption keys and clusters, with every rule of
// the CMEK reference enforced here — so the REST API, the CLI and the console all obey them.
//
// Every method takes the acting user and checks authorisation first (fails closed). Errors are
// Status codes the API maps to 4xx/5xx, with messages that say what to do instead:
//   InvalidArgument 400, PermissionDenied 403, NotFound 404, AlreadyExists/FailedPrecondition 409.
// Every key and cluster operation is audited (who, what, key id and version, result).
// Every refusal for lack of a role (403) is audited too: the user, the action tried, the target.
// Thread-safe. Changes to one cluster are serialised by a per-cluster claim held in memory, and
// every state change is a compare-and-set in the metadata store; no lock is held across a KMS
// call or a RocksDB open.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "control/backup_records.h"
#include "control/cluster_runtime.h"
#include "control/key_instructions.h"
#include "control/metadata_store.h"
#include "kms/kms_factory.h"
#include "kms/provider_registry.h"

namespace keyward {

class BackupDestination;

struct KeyRequest {
  std::string provider;
  std::string region;
  // The provider's settings (its module's schema: GET /api/v1/kms-providers); null: not given.
  nlohmann::json provider_config;
  // The request field that carried them: provider_config, or the provider's older alias
  // ("azure", "aws"); errors name fields under it.
  std::string config_field = "provider_config";
};

using KeyCheck = KmsKeyCheck;

struct KeyTestOutcome {
  EncryptionKey key;
  std::vector<KeyCheck> checks;
};

struct ClusterRequest {
  std::string name;
  std::string cloud_provider;
  std::string region;
  std::string tier;
  // "always" | "everysec" | "none"; unset: the server's --durability.
  std::optional<std::string> durability;
  // "kv" | "mariadb" (control/cluster_engine.h); unset: kv.
  std::optional<std::string> engine = std::nullopt;
  // mariadb: 1 (one mariadbd) or 3 (a Galera cluster); kv: 1. Unset: 1.
  std::optional<int64_t> nodes = std::nullopt;
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
  // A PATCH of a project: a new name (project owners) and cmek_enabled, which may only repeat
  // the project's own: CMEK is chosen when a project is created and never changes (its data
  // stays under the customer's key; a project without it has clusters under the escrow key).
  // A refused change is a 409 audited as a failed project.update; no field: the project as is.
  struct ProjectChange {
    std::optional<std::string> name;
    std::optional<bool> cmek_enabled;
  };
  absl::StatusOr<Project> UpdateProject(const User& actor, const std::string& id,
                                        const ProjectChange& change);
  // Returns the new user and their token (shown once).
  absl::StatusOr<std::pair<User, std::string>> AddMember(const User& actor,
                                                         const std::string& project_id,
                                                         const std::string& name,
                                                         const std::string& role,
                                                         int64_t token_ttl_seconds);
  absl::StatusOr<std::string> DefaultProjectId();

  // --- Accounts (accounts.cc): members, tokens, the project_creator grant. Roles are checked
  // first and fail closed; every change and every denial is audited (token and grant events
  // under the organization's id, member events under the project's). ---
  absl::StatusOr<std::vector<Member>> ListMembers(const User& actor, const std::string& project_id,
                                                  Page page);
  // Project owners (or organization owners) only.
  absl::StatusOr<Member> ChangeMemberRole(const User& actor, const std::string& project_id,
                                          const std::string& user_id, const std::string& role);
  // A member left in no project loses every token with it.
  absl::StatusOr<Member> RemoveMember(const User& actor, const std::string& project_id,
                                      const std::string& user_id);
  // Organization owners only: grants or takes back project_creator.
  absl::StatusOr<User> SetProjectCreator(const User& actor, const std::string& user_id,
                                         bool granted);
  absl::StatusOr<std::vector<TokenInfo>> ListTokens(const User& actor);
  // A new token for the actor, expiring after ttl_seconds (1 s to 1 year); shown once.
  absl::StatusOr<std::pair<TokenInfo, std::string>> CreateToken(const User& actor,
                                                                int64_t ttl_seconds);
  // The actor's own token (an organization owner may revoke anyone's in the organization); the
  // owner token is rotated, never revoked.
  absl::StatusOr<TokenInfo> RevokeToken(const User& actor, const std::string& token_id);
  // Organization owners only: a new owner token replaces the old one in one transaction, then
  // is written (0600) to the owner token file set with SetOwnerTokenPath. Returns the token.
  absl::StatusOr<std::string> RotateOwnerToken(const User& actor);
  void SetOwnerTokenPath(std::string path) { owner_token_path_ = std::move(path); }
  // A new password for the cluster (shown once): the old one is refused at once and every open
  // connection to the cluster is closed. Project members and owners; not while deleting.
  absl::StatusOr<ClusterCreated> ResetClusterPassword(const User& actor, const std::string& id);

  absl::StatusOr<EncryptionKey> CreateKey(const User& actor, const std::string& project_id,
                                          const KeyRequest& request);
  absl::StatusOr<std::vector<EncryptionKey>> ListKeys(const User& actor,
                                                      const std::string& project_id, Page page);
  absl::StatusOr<EncryptionKey> GetKey(const User& actor, const std::string& project_id,
                                       const std::string& key_id);
  // "Test encryption key and create": describe (then the provider module's checks of what it
  // said) + wrap + unwrap through the KMS seam. Every check that ran and failed makes the key
  // failed, the message naming each failed check. A test that could not reach the KMS at all
  // (this server has no client for the provider, or the KMS did not answer) proves nothing
  // about the key: its state stays as it was (pending for a new key), the message says why.
  absl::StatusOr<KeyTestOutcome> TestKey(const User& actor, const std::string& project_id,
                                         const std::string& key_id);
  nlohmann::json Instructions(const EncryptionKey& key) const;
  // The key management services a key can be created with, each with the service's identity
  // there and its regions (the console's Create Encryption Key wizard starts from this).
  nlohmann::json KeyManagementServices() const;
  // The KMS providers customers can create keys with (the registry's customer-managed modules):
  // name, display_name, cloud, config_fields, legacy_field, the cloud's known regions, and
  // whether this server is configured to reach it. Any signed-in user may read it.
  nlohmann::json KmsProviders() const;
  // Changes the provider settings of a key record nobody uses yet (see key_settings.h): `change`
  // holds provider_config fields to replace; its provider and region, when given, must equal the
  // record's (a different region or provider is a new record). The record goes back to pending:
  // it must be tested again. Project owners only. 409 naming the clusters while any cluster not
  // deleted uses the key; 409 for the escrow key of a project without CMEK.
  absl::StatusOr<EncryptionKey> UpdateKey(const User& actor, const std::string& project_id,
                                          const std::string& key_id, const KeyRequest& change);
  // Removes a key record no cluster uses (any state but deleted counts, paused too), so its
  // region can get a new one. Same refusals as UpdateKey. Returns the removed record.
  absl::StatusOr<EncryptionKey> DeleteKey(const User& actor, const std::string& project_id,
                                          const std::string& key_id);

  absl::StatusOr<ClusterCreated> CreateCluster(const User& actor, const std::string& project_id,
                                               const ClusterRequest& request);
  absl::StatusOr<std::vector<Cluster>> ListClusters(const User& actor,
                                                    const std::string& project_id, Page page);
  absl::StatusOr<Cluster> GetCluster(const User& actor, const std::string& id);
  absl::StatusOr<Cluster> PauseCluster(const User& actor, const std::string& id);
  absl::StatusOr<Cluster> ResumeCluster(const User& actor, const std::string& id);
  absl::StatusOr<Cluster> DeleteCluster(const User& actor, const std::string& id);
  // Deletion that says what happens to the cluster's backups: kept (until their retention ends,
  // readable only through the project's key), or with `with_backups` deleted first — all of
  // them, objects then records, before the cluster is shredded; 409 while one is running.
  struct ClusterDeleted {
    Cluster cluster;
    int backups_kept = 0;
    int backups_deleted = 0;
    std::string backups_message;  // "" when the server has no backups configured
  };
  absl::StatusOr<ClusterDeleted> DeleteCluster(const User& actor, const std::string& id,
                                               bool with_backups);
  absl::StatusOr<Cluster> SetBackupPolicy(const User& actor, const std::string& id,
                                          const BackupPolicy& policy);

  // Brings a cluster whose files are damaged (inaccessible with cause "corruption", or degraded
  // by a storage error) back to its last consistent point, dropping what follows the damage;
  // refused unless `accept_data_loss`. The report says what was dropped; so does the audit.
  struct Repaired {
    Cluster cluster;
    RepairReport report;
  };
  absl::StatusOr<Repaired> RepairCluster(const User& actor, const std::string& id,
                                         bool accept_data_loss);
  // The storage check (periodic, cluster_storage.cc): available clusters whose RocksDB stopped
  // writes go degraded; degraded ones whose writes work again (RocksDB recovered, or resumed
  // after space was freed) go back to available; inaccessible ones with cause "storage" (disk
  // full, I/O errors) are reopened.
  void CheckStorage();

  // Rotates the cluster's dictionary key: a new one, the dictionary re-sealed, the old one wiped.
  absl::StatusOr<Cluster> RotateDictionaryKey(const User& actor, const std::string& id);
  // Starts rewriting every file of the cluster under a new data key, in the background;
  // progress shows in the cluster's encryption.reencrypt_progress.
  absl::StatusOr<Cluster> Reencrypt(const User& actor, const std::string& id);

  // --- The key health monitor's side (actor: keyward itself). Each is a no-op when the
  // cluster is not in a state the action applies to, or another operation holds it. ---
  // available|degraded → inaccessible (cause "key"): store closed, keys wiped, endpoint sealed.
  absl::Status CutCluster(const std::string& id, const EncryptionKey& key,
                          const std::string& reason);
  // inaccessible (cause "key") → available: unwrap through the KMS again, reopen.
  absl::Status RestoreCluster(const std::string& id, const EncryptionKey& key);
  // Re-wraps an open cluster's dictionary key under the key's newest version, online.
  absl::Status RewrapCluster(const std::string& id, const EncryptionKey& key);
  // An audit event with keyward itself as the actor.
  void AuditSystem(const std::string& project_id, const std::string& action,
                   const std::string& target, const EncryptionKey* key, const absl::Status& result,
                   const std::string& key_version);
  // INFO's "# Encryption" section for a cluster.
  std::string EncryptionInfoSection(const std::string& cluster_id);
  // Runs background jobs (re-encryption) here; unset: on a thread of their own.
  void SetBackgroundRunner(std::function<void(std::function<void()>)> run);

  // --- Backups (backup_ops.cc; see backup/cluster_backup.h and README "Backups"). Unset
  // (SetBackups never called): every backup call is FailedPrecondition. ---
  void SetBackups(BackupRecords* records, BackupDestination* destination);
  // Another destination this server can read and delete backups in (new backups go to the one
  // SetBackups named): a backup is always restored from and deleted in the destination its
  // record names, so switching --backup-dir to Azure keeps earlier backups usable.
  void AddBackupDestination(BackupDestination* destination);
  // Where dual-region copies go (backup_copy.cc); unset: no copies are made.
  void SetBackupSecondary(BackupDestination* destination);
  // Starts a backup of an open cluster on the background runner; returns the running record.
  // 409 while the cluster has a backup running or is not open.
  absl::StatusOr<BackupRecord> CreateBackup(const User& actor, const std::string& cluster_id);
  absl::StatusOr<std::vector<BackupRecord>> ListBackups(const User& actor,
                                                        const std::string& cluster_id, Page page);
  absl::StatusOr<BackupRecord> GetBackup(const User& actor, const std::string& id);
  // Deletes the backup's objects (manifest first) and its record; 409 while it runs.
  absl::StatusOr<BackupRecord> DeleteBackup(const User& actor, const std::string& id);
  // A new cluster `name` in the backup's project from a completed backup: everything verified
  // and decrypted into a staging directory first; any failure leaves no cluster and no files.
  // Read from the backup's destination; when that fails (objects missing or damaged, the
  // destination gone) and the backup has a completed dual-region copy in this server's
  // secondary destination, from the copy. `from_copy`: from the copy only.
  struct RestoredBackup : ClusterCreated {
    std::string source;         // the destination it was read from
    bool from_copy = false;     // the dual-region copy
    std::string primary_error;  // why not the primary (from_copy without the request)
  };
  absl::StatusOr<RestoredBackup> RestoreBackup(const User& actor, const std::string& backup_id,
                                               const std::string& name, bool from_copy = false);
  // The backup policies at work (backup_schedule.cc; the scheduler calls it every minute):
  // starts a backup of each available cluster whose policy has one due (one per period: hour,
  // UTC day, week, or day at HH:MM UTC) and deletes, objects then record, every finished backup
  // older than its cluster's retention_days, deleted clusters' too. Both audited as keyward.
  // Returns how many backups it started and how many it deleted.
  struct BackupScheduleRun {
    int started = 0;
    int expired = 0;
    int swept = 0;  // leaked shared objects deleted (SweepLeakedBackupObjects)
  };
  BackupScheduleRun RunBackupSchedule();
  // Leaked shared SST objects (backup_sweep.cc): a shared object of one of this server's
  // clusters, in any configured destination or the dual-region one, that no backup holds (a
  // crash or a failed delete left it) is deleted once it has been seen unheld for the grace
  // period. RunBackupSchedule runs it at most once an hour.
  struct BackupSweepRun {
    int unheld = 0;   // objects seen that no backup holds
    int deleted = 0;  // of those, unheld for longer than the grace period, deleted
  };
  BackupSweepRun SweepLeakedBackupObjects();
  static constexpr int64_t kBackupSweepGraceSeconds = 24 * 3600;

  absl::StatusOr<std::vector<AuditEvent>> ListAudit(const User& actor,
                                                    const std::string& project_id,
                                                    const AuditFilter& filter, Page page);
  absl::StatusOr<std::vector<AuditEvent>> ListAudit(const User& actor,
                                                    const std::string& project_id, int64_t since_ms,
                                                    int64_t until_ms, Page page) {
    AuditFilter f;
    f.since_ms = since_ms;
    f.until_ms = until_ms;
    return ListAudit(actor, project_id, f, page);
  }

  // Where clients reach a cluster: host:port (empty unless available or degraded) and whether the
  // endpoint speaks TLS (every endpoint of this server does, or none).
  struct EndpointInfo {
    std::string address;
    bool tls = false;
    // Every node's address, `address` (node 0) first; one entry for a single-node cluster.
    std::vector<std::string> addresses;
    // The CA certificate (path on the server) a mariadb cluster's SQL port is verified with,
    // when keyward issued that port's certificate; empty otherwise.
    std::string ca_file;
  };
  EndpointInfo Endpoint(const Cluster& c) const;

 private:
  enum class Need { kView, kMember, kOwner };
  // A denial (403) is audited as a failed `action` on `target` (default: the project).
  absl::StatusOr<Project> Authorize(const User& actor, const std::string& project_id, Need need,
                                    std::string_view action = {}, std::string_view target = {});
  absl::StatusOr<Cluster> LoadCluster(const User& actor, const std::string& id, Need need,
                                      Project* project, std::string_view action = {});
  void AuditDenied(const User& actor, const std::string& project_id, std::string_view action,
                   std::string_view target, const absl::Status& denied);
  void Audit(const User* actor, const std::string& project_id, const std::string& action,
             const std::string& target, const EncryptionKey* key, const absl::Status& result,
             const std::string& detail = "", const std::string& key_version = "");
  // `initial_password`: the new cluster's password, for engines that need it in the clear at
  // creation (mariadb's admin account).
  absl::Status OpenCluster(Cluster& c, bool create, const std::string& initial_password = "");
  // Why a cluster did not open, in the words the API shows: cause "key" (the key's fault),
  // "corruption" (damaged files: repair) or "storage" (disk full, I/O: retried), with what to do.
  struct OpenFailure {
    std::string cause;
    std::string message;
  };
  static OpenFailure ClassifyOpenFailure(const std::string& id, const absl::Status& st);
  void CheckOpenCluster(const std::string& id);
  void RetryStorageFailure(const Cluster& c);
  void ReopenAfterDiskFull(Cluster& c);
  // An open cluster whose engine stopped serving by itself (ClusterRuntime::ServingError):
  // closed, inaccessible with the reason; the storage check's retry reopens it.
  void CloseStoppedEngine(const std::string& id);
  // The cluster's stored durability (the server's default for a record without one).
  Durability DurabilityOf(const Cluster& c) const;
  // Start-up: opens an available/inaccessible cluster, or seals it with the reason.
  absl::Status StartCluster(Cluster& c);
  // Compare-and-set from the cluster's current state (c.state) to `state`; on success `c`
  // reflects the change. FailedPrecondition naming the stored state when it moved meanwhile.
  absl::Status Transition(Cluster& c, const std::string& state, const std::string& message,
                          const std::string& cause = "", std::optional<int> port = std::nullopt);
  // Records which key version wraps the cluster, its dictionary key and the data keys in use.
  void RecordProtection(const std::string& cluster_id, bool wrapped_now);
  absl::StatusOr<KeyTestOutcome> RunKeyTest(const User& actor, EncryptionKey key);
  int64_t Now() const { return now_ms_() / 1000; }

  // One operation at a time per cluster, without holding a lock while it runs (it may call a
  // KMS or open RocksDB). API requests wait a little for a busy cluster; the monitor skips it.
  class Claim {
   public:
    Claim() = default;
    Claim(ControlPlane* cp, std::string id) : cp_(cp), id_(std::move(id)) {}
    Claim(Claim&& o) noexcept : cp_(std::exchange(o.cp_, nullptr)), id_(std::move(o.id_)) {}
    Claim& operator=(Claim&&) = delete;
    ~Claim();
    bool held() const { return cp_ != nullptr; }

   private:
    ControlPlane* cp_ = nullptr;
    std::string id_;
  };
  absl::StatusOr<Claim> ClaimCluster(const std::string& id);  // waits up to 10 s
  // An API request's way in: authorised, claimed, and the cluster and its key as of the claim.
  struct Claimed {
    Claim claim;
    Cluster cluster;
    std::optional<EncryptionKey> key;
  };
  absl::StatusOr<Claimed> ClaimForChange(const User& actor, const std::string& id, Need need,
                                         std::string_view action);
  Claim TryClaimCluster(const std::string& id);

  // Start-up: backups a restart interrupted → failed (their objects removed), and leftover
  // checkpoints and restore staging directories removed.
  absl::Status RecoverBackups(const std::vector<Cluster>& clusters);
  // CreateBackup's work once authorised; `actor` nullptr: the backup policy (keyward itself).
  absl::StatusOr<BackupRecord> StartBackup(const User* actor, const Cluster& c);
  void RunBackup(BackupRecord record, EncryptionKey key, std::weak_ptr<ClusterStore> store,
                 std::shared_ptr<MasterKeyProvider> provider);
  // A backup job's end, whatever the engine: the record completed or failed (a failed one's
  // objects removed), the dual-region copy, the audit.
  void FinishBackupJob(const BackupRecord& r, const EncryptionKey& key,
                       const absl::StatusOr<BackupSummary>& summary);
  // The mariadb side of StartBackup and RestoreBackup (backup_mariadb.cc).
  absl::StatusOr<BackupRecord> StartMariadbBackup(const User* actor, const Cluster& c,
                                                  const EncryptionKey& key);
  absl::StatusOr<BackupManifest> RestoreMariadbStaging(
      BackupDestination& from, MasterKeyProvider& provider, const std::string& backup_id,
      const std::string& cluster_id, const std::string& staging, const std::string& password);
  // DeleteCluster's backup side (backup_ops.cc): deletes every backup of cluster `c`, or says
  // none may be deleted while one runs; then the sentence the answer carries.
  absl::StatusOr<int> DeleteClusterBackups(const User& actor, const Cluster& c);
  // Completed backups of the cluster (the ones a restore can use).
  absl::StatusOr<int> CountClusterBackups(const std::string& cluster_id);
  std::string BackupsAfterDelete(const Cluster& c, int kept, int deleted);
  absl::StatusOr<BackupRecord> LoadBackup(const User& actor, const std::string& id, Need need,
                                          std::string_view action);
  // The configured destination the backup was written to (its record's `destination`).
  absl::StatusOr<BackupDestination*> BackupDestinationFor(const BackupRecord& b);
  // DeleteBackupObjects in that destination, and of its dual-region copy.
  absl::Status DeleteObjectsOf(const BackupRecord& b);
  // Dual-region copies (backup_copy.cc): after a backup completes; on delete; at start-up.
  // Before a backup is marked completed: records its dual-region copy as `copying` (or
  // `refused`, audited, in a CMEK project), so no reader sees it completed without its copy's
  // state; true when CopyBackupIfDualRegion must then make the copy.
  bool StartDualRegionCopy(const BackupRecord& b);
  void CopyBackupIfDualRegion(const BackupRecord& b);
  // A new backup's record in state running (fresh id, now, the configured destination), for
  // kv and mariadb backups alike; not stored yet.
  absl::StatusOr<BackupRecord> NewRunningBackup(const Cluster& c, const std::string& key_record_id,
                                                const std::string& kms_key_id);
  absl::Status DeleteBackupCopy(const BackupRecord& b);
  void RecoverBackupCopies();

  std::string owner_token_path_;
  BackupRecords* backups_ = nullptr;
  BackupDestination* backup_destination_ = nullptr;      // where new backups go
  std::vector<BackupDestination*> backup_destinations_;  // every configured one, it included
  BackupDestination* backup_secondary_ = nullptr;        // dual-region copies
  std::mutex sweep_mu_;                                  // never held across a destination call
  int64_t last_sweep_ ABSL_GUARDED_BY(sweep_mu_) = 0;
  // "<destination>\n<object>" → when a sweep first saw the object held by no backup.
  std::map<std::string, int64_t> unheld_since_ ABSL_GUARDED_BY(sweep_mu_);
  MetadataStore& metadata_;
  KmsFactory& kms_;
  ClusterRuntime& runtime_;
  ServiceIdentity identity_;
  std::function<int64_t()> now_ms_;
  std::function<void(std::function<void()>)> background_;
  // Shown in place of the stored state when a state change could not be recorded (a full disk
  // refuses the metadata write too): the API still says why a cluster is not serving.
  void NoteUnrecorded(const absl::Status& failed, const Cluster& c, const std::string& state,
                      const std::string& message, const std::string& cause);
  Cluster WithUnrecorded(Cluster c);
  std::mutex unrecorded_mu_;
  std::map<std::string, ClusterTransition> unrecorded_ ABSL_GUARDED_BY(unrecorded_mu_);
  std::mutex claims_mu_;
  std::condition_variable claims_cv_;
  std::set<std::string> claimed_ ABSL_GUARDED_BY(claims_mu_);
};

}  // namespace keyward
