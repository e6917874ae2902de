#pragma once
// The encrypted backup format: one backup is a set of objects in a BackupDestination: its own
// objects under the prefix "<backup id>/" (the chunks of the files only it holds, then the sealed
// manifest, written last: a backup whose manifest is missing is incomplete and never restorable),
// and the shared file objects under "shared/<cluster id>/" that its manifest names.
//
// Keys: every backup has its own fresh 256-bit backup key (RAND_bytes). The cluster's master-key
// provider (the one that wraps the cluster's dictionary key: CMEK or escrow) wraps it with the
// context "keyward-backup:" + backup id, so a wrapped key cannot be moved to another backup.
// Every shared file object has its own fresh 256-bit file key, kept only in the sealed manifests
// of the backups that hold the object (so it is wrapped, through the backup key, by the master
// key too). Keys live only in SecretBytes (wiped); they are never written unwrapped.
//
// Backup chunk object "<backup id>/data/<file index, 6 digits>-<chunk index, 8 digits>": GcmSeal
// output (nonce 12 || ciphertext || tag 16) of up to chunk_size plaintext bytes of one file, with
//   AAD = "keyward-backup-chunk:" || u32 len || backup id || u32 len || file name ||
//         u64 chunk index || u8 last (1 for the file's last chunk, else 0)
// (integers little-endian). A chunk moved to another index or file, a chunk of another backup
// (other key, other id), a dropped last chunk (the new last one says "not last") all fail.
// Every file has at least one chunk (an empty file: one empty chunk).
//
// Shared file objects (incremental backups): SST files never change once written, so each SST is
// stored once per cluster as a file object "shared/<cluster id>/<object id>" (object id: 32 random
// hex digits) with chunks "<object>/<chunk index, 8 digits>", GcmSeal under the object's file key:
//   AAD = "keyward-backup-file-chunk:" || u32 len || object || u64 file size ||
//         u64 chunk index || u8 last
// A later backup of the cluster whose checkpoint holds an SST of the same name, size and SHA-256
// as one in the latest backup's manifest lists that file object (and its key) in its own manifest
// instead of uploading the file again. The manifest lists everything a restore needs, so every
// backup restores on its own, whichever other backup is deleted: a shared object is deleted only
// when no backup's record holds it any more (control/backup_records.h). A chunk of another
// object (other key, other name in the AAD), moved, dropped or altered fails as above, and the
// restored file's SHA-256 and size are checked against the manifest.
//
// Manifest object "<backup id>/manifest" (integers little-endian):
//   0   8  magic "KWBACKM1"
//   8   4  u32 format version (2; version 1, without shared file objects, is still read)
//   12  .. u32 len + backup id                      (in the clear: needed to check and unwrap)
//   ..  .. u32 len + WrappedKey::Serialize() of the backup key (provider, key id, key version)
//   ..  .. u32 len + AES-256-GCM(backup key, body, AAD = "keyward-backup-manifest:" || every
//          byte before this length field)
// Body: JSON {backup_id, cluster_id, project_id, key_record_id, created_at, chunk_size,
// files: [{name, size, sha256 (hex of the plaintext), chunks, and for a file in a shared object:
// object, key (hex of the file key)}], and for a mariadb backup: current_data_key and
// data_keys: [{id, created, key (hex of the data key)}]}: the cluster's data keys the backup's
// InnoDB pages are encrypted under, so the backup restores after its cluster is crypto-shredded
// (readable only through the backup key, so only through the cluster's master key). The reader
// names the backup id it expects: a manifest of another backup put in its place is refused (clear
// id and sealed id both checked), and a manifest sealed under another key or edited fails the AEAD.
// The opened body is wiped. Thread-compatible free functions; no state.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"
#include "kms/master_key_provider.h"

namespace keyward {

inline constexpr uint32_t kBackupChunkSize = 1 << 20;
inline constexpr size_t kBackupKeySize = 32;

struct BackupFileEntry {
  std::string name;  // a plain file name (no '/'), e.g. "000012.sst"
  uint64_t size = 0;
  std::string sha256_hex;  // of the plaintext
  uint32_t chunks = 0;
  // Empty: the file's chunks are the backup's own. Else the shared file object holding them
  // ("shared/<cluster id>/<object id>") and its file key (kBackupKeySize bytes).
  std::string object;
  std::shared_ptr<const SecretBytes> file_key;
};

// One of the source cluster's data keys (key_dictionary.h), carried by a mariadb backup.
struct BackupDataKey {
  uint32_t id = 0;  // the dictionary's key id (MariaDB key version 2 x id)
  uint64_t created_unix = 0;
  std::shared_ptr<const SecretBytes> key;  // kBackupKeySize bytes
};

struct BackupManifest {
  std::string backup_id;
  std::string cluster_id;
  std::string project_id;
  std::string key_record_id;  // the control plane's encryption-key record
  int64_t created_at = 0;     // unix seconds
  uint32_t chunk_size = kBackupChunkSize;
  std::vector<BackupFileEntry> files;
  // Empty for kv backups. Else every data key of the cluster's dictionary, ids unique and
  // non-zero, current_data_key among them.
  std::vector<BackupDataKey> data_keys;
  uint32_t current_data_key = 0;
  WrappedKey wrapped_key;  // the backup key, wrapped; key id and version are read from it
};

std::string BackupManifestObject(std::string_view backup_id);
std::string BackupChunkObject(std::string_view backup_id, size_t file_index, uint64_t chunk);
std::string BackupWrapContext(std::string_view backup_id);
// A new shared file object's name for `cluster_id` (random id).
absl::StatusOr<std::string> NewBackupFileObject(std::string_view cluster_id);
std::string BackupFileChunkObject(std::string_view object, uint64_t chunk);
// Whether a manifest of `cluster_id` may name `object`: "shared/<cluster id>/<32 hex digits>".
bool IsBackupFileObject(std::string_view cluster_id, std::string_view object);
// How many chunks a file of `size` bytes has (at least one).
uint32_t BackupChunkCount(uint64_t size, uint32_t chunk_size);
// File names a manifest may carry: [A-Za-z0-9._-]+, not "." or "..".
bool IsSafeBackupFileName(std::string_view name);

absl::StatusOr<std::string> SealBackupChunk(const SecretBytes& key, std::string_view backup_id,
                                            std::string_view file_name, uint64_t index, bool last,
                                            std::string_view plaintext);
// DataLoss naming the backup, file and chunk when the chunk was altered, moved or is foreign.
absl::StatusOr<SecretBytes> OpenBackupChunk(const SecretBytes& key, std::string_view backup_id,
                                            std::string_view file_name, uint64_t index, bool last,
                                            std::string_view sealed);

// The same for a chunk of a shared file object (file of `file_size` plaintext bytes).
absl::StatusOr<std::string> SealBackupFileChunk(const SecretBytes& file_key,
                                                std::string_view object, uint64_t file_size,
                                                uint64_t index, bool last,
                                                std::string_view plaintext);
// DataLoss naming the backup, file, object and chunk.
absl::StatusOr<SecretBytes> OpenBackupFileChunk(const SecretBytes& file_key,
                                                std::string_view backup_id,
                                                std::string_view file_name, std::string_view object,
                                                uint64_t file_size, uint64_t index, bool last,
                                                std::string_view sealed);

// The two seals above into `out`, reusing its memory (ciphertext only: nothing to wipe).
absl::Status SealBackupChunkInto(const SecretBytes& key, std::string_view backup_id,
                                 std::string_view file_name, uint64_t index, bool last,
                                 std::string_view plaintext, std::string* out);
absl::Status SealBackupFileChunkInto(const SecretBytes& file_key, std::string_view object,
                                     uint64_t file_size, uint64_t index, bool last,
                                     std::string_view plaintext, std::string* out);

// The two opens above into `out` (a reused wiped buffer of at least chunk_size bytes), returning
// the plaintext size; `out` is the caller's to wipe, also on failure.
absl::StatusOr<size_t> OpenBackupChunkInto(const SecretBytes& key, std::string_view backup_id,
                                           std::string_view file_name, uint64_t index, bool last,
                                           std::string_view sealed, SecretBytes& out);
absl::StatusOr<size_t> OpenBackupFileChunkInto(const SecretBytes& file_key,
                                               std::string_view backup_id,
                                               std::string_view file_name, std::string_view object,
                                               uint64_t file_size, uint64_t index, bool last,
                                               std::string_view sealed, SecretBytes& out);

// Seals `manifest` (its wrapped_key must already hold `key` wrapped).
absl::StatusOr<std::string> SealBackupManifest(const BackupManifest& manifest,
                                               const SecretBytes& key);

struct OpenedBackupManifest {
  BackupManifest manifest;
  SecretBytes key;
};
// Parses the clear header, checks it names `expected_backup_id`, unwraps the backup key through
// `provider` (the provider's error, naming the key, when it cannot) and opens the body.
absl::StatusOr<OpenedBackupManifest> OpenBackupManifest(std::string_view bytes,
                                                        std::string_view expected_backup_id,
                                                        MasterKeyProvider& provider);
// The clear header only (no unwrap): backup id and wrapped key, for listings and diagnostics.
absl::StatusOr<std::pair<std::string, WrappedKey>> PeekBackupManifest(std::string_view bytes);
// The body parser OpenBackupManifest runs after authentication; public for the fuzzer
// (fuzz/backup_manifest_fuzz.cc). Checks every field, file names, chunk counts, and that shared
// objects belong to the manifest's cluster with keys of the right size, and the data keys.
absl::StatusOr<BackupManifest> ParseBackupManifestBody(std::string_view body);

}  // namespace keyward
