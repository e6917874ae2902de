#pragma once
// Backing up a running cluster into a BackupDestination, and restoring a backup into a new
// cluster directory. See backup_format.h for the objects and README "Backups".
//
// What a backup carries: the PLAINTEXT of a RocksDB checkpoint, read through the cluster's
// encrypted file system, each chunk then sealed under the backup's own key. Not the files as they
// are on disk (ciphertext under the data keys) plus the key dictionary, because:
//  - a restore makes a NEW cluster (new id): the dictionary binds the old cluster id, and its
//    data keys would live on in the new cluster; here the new cluster gets a fresh dictionary
//    and fresh data keys, so shredding either cluster never affects the other;
//  - the backup stays readable after data-key rotation, re-encryption or the cluster's own
//    crypto-shred, needing only the master key (one unwrap) — not a copy of the dictionary;
//  - every byte is authenticated by the backup's AEAD (the on-disk CTR ciphertext is not).
// Plaintext exists only in memory, a few chunks at a time (in wiped buffers: the pipelines of
// cluster_backup.cc keep at most kWorkerThreads + kMaxQueuedChunks in flight); it never reaches
// the destination or disk.
//
// Thread-compatible: callers run one backup or restore per job.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backup/backup_destination.h"
#include "backup/backup_format.h"
#include "crypto/random.h"
#include "kms/master_key_provider.h"
#include "storage/cluster_store.h"

namespace keyward {

// Which backup holds which shared file object (backup_format.h): the control plane's backup
// records. A shared object is deleted only once no backup holds it. Thread-safe.
class BackupFileRefs {
 public:
  virtual ~BackupFileRefs() = default;
  // Records that `backup_id` holds the new object `object`, before its first chunk is put (so a
  // crash leaves a record to clean up, never an unrecorded object).
  virtual absl::Status Add(const std::string& backup_id, const std::string& object) = 0;
  // Makes `backup_id` a holder of `object` when another backup still holds it, atomically with
  // that check (a delete releasing the last holder then keeps the object); false when none does
  // (the object may be being deleted: upload the file anew).
  virtual absl::StatusOr<bool> Claim(const std::string& backup_id, const std::string& object) = 0;
};

struct BackupJob {
  std::string backup_id;
  std::string cluster_id;
  std::string project_id;
  std::string key_record_id;
  int64_t created_at = 0;  // unix seconds
  uint32_t chunk_size = kBackupChunkSize;
  // Where the checkpoint goes (must not exist; same file system as the cluster directory).
  std::string checkpoint_dir;
  // Incremental backups: the latest completed backup of the cluster in the same destination,
  // whose SSTs this one reuses when unchanged, and the holders' record. Without both every file
  // is uploaded (still into shared objects, which later backups can reuse).
  std::string base_backup_id;
  BackupFileRefs* refs = nullptr;
};

// A new backup's manifest header from its job (either engine's: kv's BackupJob, mariadb's
// MariadbBackupJob carry the same identity fields) and a fresh backup key, wrapped by `provider`
// into the manifest and handed back in `*key` for sealing the chunks.
template <typename Job>
absl::StatusOr<BackupManifest> NewBackupManifest(const Job& job, MasterKeyProvider& provider,
                                                 SecretBytes* key) {
  absl::StatusOr<SecretBytes> fresh = RandomSecret(kBackupKeySize);
  if (!fresh.ok()) return fresh.status();
  BackupManifest m;
  m.backup_id = job.backup_id;
  m.cluster_id = job.cluster_id;
  m.project_id = job.project_id;
  m.key_record_id = job.key_record_id;
  m.created_at = job.created_at;
  m.chunk_size = job.chunk_size;
  absl::StatusOr<WrappedKey> wrapped = provider.Wrap(*fresh, BackupWrapContext(job.backup_id));
  if (!wrapped.ok()) return wrapped.status();
  m.wrapped_key = *std::move(wrapped);
  *key = *std::move(fresh);
  return m;
}

struct BackupSummary {
  uint64_t bytes = 0;  // plaintext bytes backed up
  uint64_t files = 0;
  uint64_t files_reused = 0;  // SSTs taken from the base backup, not uploaded again
  uint64_t bytes_reused = 0;  // their plaintext bytes
  uint64_t objects_written = 0;
  uint64_t bytes_written = 0;  // sealed bytes put into the destination
  std::string key_id;
  std::string key_version;
};

// done/total in plaintext bytes; called from the calling thread.
using BackupProgress = std::function<void(uint64_t done, uint64_t total)>;

// Checkpoint → chunks → manifest (last). On failure the objects written so far (its own and the
// shared objects it created) are deleted (best effort; without a manifest they are never
// restorable anyway) and the checkpoint removed; the caller releases its references.
absl::StatusOr<BackupSummary> BackUpCluster(ClusterStore& store, MasterKeyProvider& provider,
                                            BackupDestination& dest, const BackupJob& job,
                                            const BackupProgress& progress);

// Verifies and decrypts backup `backup_id` into `target_dir` (must not exist) as a new cluster
// `new_cluster_id`: a fresh key dictionary wrapped by `provider`, every file re-encrypted under
// fresh data keys. Each file's SHA-256 and chunk count are checked against the manifest. On any
// failure `target_dir` is removed and the error names the backup and what failed. The caller
// opens the cluster only after this returns OK. Returns the (verified) manifest.
absl::StatusOr<BackupManifest> RestoreBackup(BackupDestination& dest, MasterKeyProvider& provider,
                                             const std::string& backup_id,
                                             const std::string& new_cluster_id,
                                             const std::string& target_dir, int64_t now_unix,
                                             const BackupProgress& progress);

// Deletes every object of a backup, the manifest first (so a half-deleted backup is never
// mistaken for a complete one). Not the shared file objects its manifest names: the caller
// deletes those no other backup holds (DeleteBackupFileObjects).
absl::Status DeleteBackupObjects(BackupDestination& dest, const std::string& backup_id);
// Deletes shared file objects with all their chunks; the first failure (after trying all).
absl::Status DeleteBackupFileObjects(BackupDestination& dest,
                                     const std::vector<std::string>& objects);

}  // namespace keyward
