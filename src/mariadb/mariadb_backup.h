#pragma once
// Backups of a mariadb cluster: `mariadb-backup --backup --stream=mbstream` against the running,
// encrypted mariadbd, its stdout sealed chunk by chunk into keyward's encrypted backup format
// (backup/backup_format.h: one file, kMariadbStreamFileName, in the backup's own chunks under
// the backup's key, which the cluster's master-key provider wraps; manifest last). The stream
// goes through a pipe into wiped memory and out sealed: no plaintext file on disk in between.
//
// What the stream holds: InnoDB pages and redo already encrypted by MariaDB under the cluster's
// data keys, and plaintext MariaDB cannot encrypt (.frm table definitions, the system Aria tables
// and aria_log.*, backup-my.cnf, xtrabackup_* metadata). The backup's AEAD covers all of it.
// mariadb-backup keeps its copy of the (encrypted) redo log in an unlinked temporary file under
// the instance's tmpdir while it streams.
//
// Keys: mariadb-backup loads the keyward_key_management plugin itself (it reads the plugin and
// its socket variable from the server) and asks the instance's MariadbKeyService for keys, so
// the backup's pid is allowed on that service while it runs (SetBootstrapPid). A restore needs
// the same data keys: InnoDB pages in the stream stay encrypted under them. So the backup's
// sealed manifest carries every data key of the cluster's dictionary (job.dictionary; read once
// the stream has ended, so a key added meanwhile is in), encrypted under the backup key like the
// rest of the manifest: the backup restores after its cluster is crypto-shredded, and only
// through the master key that wraps the backup key. RestoreMariadbBackupAsNewCluster builds the
// new cluster's own dictionary from those keys (same ids, so same MariaDB key versions, under a
// new dictionary key), serves it to `mariadb-backup --prepare` from a temporary key service, and
// gives the restored admin account a new password. (RestoreMariadbBackup serves keys from a
// dictionary the caller has: a backup without the data-key section needs its cluster's.)
//
// Thread-compatible: one backup or restore per job. No lock is held across the child processes.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "backup/backup_destination.h"
#include "backup/backup_format.h"
#include "backup/cluster_backup.h"
#include "kms/master_key_provider.h"
#include "mariadb/mariadb_instance.h"

namespace keyward {

class KeyDictionary;
class MariadbKeyService;

// The one file a mariadb backup's manifest lists.
inline constexpr char kMariadbStreamFileName[] = "mariadb-backup.mbstream";

struct MariadbTools {
  std::string mariadb_backup = "/usr/bin/mariadb-backup";
  std::string mbstream = "/usr/bin/mbstream";
};

struct MariadbBackupJob {
  std::string backup_id;
  std::string cluster_id;
  std::string project_id;
  std::string key_record_id;
  int64_t created_at = 0;  // unix seconds
  uint32_t chunk_size = kBackupChunkSize;
  // The running instance (its option file, client socket, tmpdir and run dir are used).
  MariadbInstanceSpec instance;
  MariadbTools tools;
  // The cluster's key dictionary: when set, every data key it holds goes into the sealed
  // manifest (see above). Must outlive the call.
  const KeyDictionary* dictionary = nullptr;
};

// A backup's fresh key, wrapped into its manifest's start (NewBackupManifest: one Wrap through
// the cluster's provider). Made before the job runs, so a key the KMS refuses refuses the backup
// when it is asked for.
struct MariadbBackupStart {
  BackupManifest manifest;
  SecretBytes key;
};
absl::StatusOr<MariadbBackupStart> StartMariadbBackup(const MariadbBackupJob& job,
                                                      MasterKeyProvider& provider);

// Streams a backup of the running instance into `dest` (manifest last). `keys` is the service
// the instance's mariadbd gets its keys from. On failure mariadb-backup is killed and the objects
// written so far deleted (best effort: without a manifest they are never restorable anyway).
absl::StatusOr<BackupSummary> BackUpMariadb(const MariadbBackupJob& job, MariadbBackupStart start,
                                            MariadbKeyService& keys, BackupDestination& dest,
                                            const BackupProgress& progress);
// StartMariadbBackup, then the above.
absl::StatusOr<BackupSummary> BackUpMariadb(const MariadbBackupJob& job, MariadbKeyService& keys,
                                            MasterKeyProvider& provider, BackupDestination& dest,
                                            const BackupProgress& progress);

struct MariadbRestoreJob {
  std::string backup_id;
  // The new instance: data_dir must be missing or empty; key_socket is where `keys` (serving the
  // backed-up cluster's dictionary) answers; plugin_dir holds keyward_key_management.so.
  MariadbInstanceSpec target;
  MariadbTools tools;
};

// Opens the manifest (unwrap through `provider`), decrypts and authenticates every chunk into
// `mbstream -x` in target.data_dir, checks the stream's size and SHA-256 against the manifest,
// points backup-my.cnf at the target's key socket and plugin dir, runs `mariadb-backup
// --prepare` with keys from `keys`, and writes the target's option file. The caller starts
// mariadbd only after this returns OK. On any failure target.data_dir is removed (nothing
// half-restored stays) and the error names the backup and what failed.
absl::StatusOr<BackupManifest> RestoreMariadbBackup(const MariadbRestoreJob& job,
                                                    MariadbKeyService& keys,
                                                    MasterKeyProvider& provider,
                                                    BackupDestination& dest,
                                                    const BackupProgress& progress);

struct MariadbNewClusterRestore {
  MariadbRestoreJob restore;    // target: the new cluster's instance; its key_socket is served here
  std::string cluster_id;       // the new cluster's id
  std::string dictionary_path;  // its keys.dict: must not exist; created from the manifest
  std::string admin_user = "admin";
  SecretBytes admin_password;  // the restored admin account's new password
  // With restore.target.run_as.drop: the directories from here down to the target are made
  // searchable for that account (empty: two levels above the cluster dir, as serve lays it out).
  std::string data_root;
};

// Restores a backup that carries its data keys as a new cluster: opens the manifest (unwrap
// through `provider`), creates the new cluster's key dictionary at dictionary_path holding the
// backup's data keys (same ids; a new dictionary key wrapped by `provider`), serves it on
// restore.target.key_socket for this call only (to the pids of the prepare and bootstrap
// children), restores and prepares as RestoreMariadbBackup does, then sets the admin account's
// password with a `mariadbd --bootstrap` run (no network). On any failure the data dir and the
// dictionary are removed, and the error names the backup and what failed.
absl::StatusOr<BackupManifest> RestoreMariadbBackupAsNewCluster(const MariadbNewClusterRestore& job,
                                                                MasterKeyProvider& provider,
                                                                BackupDestination& dest,
                                                                const BackupProgress& progress);

// backup-my.cnf (plaintext, no secrets) as written by mariadb-backup, with its plugin_dir and
// keyward_key_management_socket lines pointed at `plugin_dir` and `key_socket` (added when
// missing). InvalidArgument for a path holding a newline or quote.
absl::StatusOr<std::string> RewriteBackupMyCnf(std::string_view text, const std::string& plugin_dir,
                                               const std::string& key_socket);

}  // namespace keyward
