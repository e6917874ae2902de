#pragma once
// A cluster's key dictionary: the data keys that encrypt its files, sealed under a dictionary key
// that the master-key provider (escrow, Azure Key Vault, AWS KMS) wraps. One KMS call opens it;
// reads and writes never touch the KMS.
//
// On-disk format (all integers little-endian), file `keys.dict` in the cluster directory:
//   0   8  magic "KWKDICT1"
//   8   4  u32 format version (1)
//   12  4  u32 W = length of the wrapped-key record
//   16  W  WrappedKey::Serialize() of the dictionary key
//   ..  4  u32 B = length of the sealed body
//   ..  B  AES-256-GCM(dictionary key, body, AAD = "keyward-dict:" + cluster id + bytes[0, 16+W))
//   ..  32 SHA-256 of every byte before it (tells damage apart from a wrong key)
// Body: u32 current data-key id, u32 count, count × { u32 id, u64 created unix seconds, 32 key }.
//
// Writes go temp → fsync → rename → fsync(dir): a crash leaves the old or the new dictionary, and
// each is self-contained (its own wrapped dictionary key and body), so either one opens.
// Data keys are only ever added, so the dictionary on disk always holds every key a live file
// needs.
//
// Re-wrap and dictionary-key rotation call the provider (a network round trip) WITHOUT holding
// the mutex: they snapshot under the lock, wrap outside it, then re-take the lock and install
// only if no other re-wrap or rotation happened meanwhile (`wrap_generation_`); otherwise they
// change nothing and return Aborted, and the caller runs them again. Adding data keys in between
// does not conflict: the body is re-sealed from the in-memory state at install time.
// Thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"
#include "kms/master_key_provider.h"

namespace keyward {

struct DataKey {
  uint32_t id = 0;
  uint64_t created_unix = 0;
  SecretBytes key;
};

class KeyDictionary {
 public:
  // Set on Open's error when the master-key provider refused the unwrap (a key problem, not a
  // damaged file).
  static constexpr char kUnwrapFailedPayload[] = "type.keyward.dev/unwrap-failed";
  static constexpr char kFileName[] = "keys.dict";

  // Creates a new dictionary (fresh dictionary key and first data key) at `path`.
  static absl::StatusOr<std::unique_ptr<KeyDictionary>> Create(const std::string& path,
                                                               const std::string& cluster_id,
                                                               MasterKeyProvider& provider,
                                                               uint64_t now_unix);
  // Creates a dictionary holding exactly `keys` (ids unique, non-zero, kDataKeySize bytes), with
  // `current_id` current, under a fresh dictionary key wrapped by `provider`: a cluster restored
  // from a backup keeps the data keys (same ids) its restored files are encrypted under.
  static absl::StatusOr<std::unique_ptr<KeyDictionary>> CreateWithDataKeys(
      const std::string& path, const std::string& cluster_id, MasterKeyProvider& provider,
      std::vector<std::shared_ptr<const DataKey>> keys, uint32_t current_id);
  // Opens an existing dictionary; one Unwrap call through `provider`.
  static absl::StatusOr<std::unique_ptr<KeyDictionary>> Open(const std::string& path,
                                                             const std::string& cluster_id,
                                                             MasterKeyProvider& provider);
  // Parses the envelope and verifies the checksum without unwrapping (fuzzing, diagnostics).
  static absl::StatusOr<WrappedKey> ParseEnvelope(std::string_view file_bytes,
                                                  std::string_view* sealed_body,
                                                  std::string_view* header);

  // Returns the key with `id`, or nullptr. The shared_ptr keeps it alive for open files.
  std::shared_ptr<const DataKey> Find(uint32_t id) const;
  std::shared_ptr<const DataKey> Current() const;

  // Adds a new current data key when the current one is older than `period_seconds`.
  // Returns true when it rotated. Existing files keep their keys.
  absl::StatusOr<bool> RotateIfOlderThan(uint64_t period_seconds, uint64_t now_unix);
  // Adds a new current data key whatever the current one's age; returns its id.
  absl::StatusOr<uint32_t> AddDataKey(uint64_t now_unix);
  // Re-wraps the dictionary key under `new_provider`; cost independent of data size. One Wrap
  // call, made without the mutex held. Aborted if another Rewrap/RotateDictionaryKey finished
  // while this one waited for the provider (nothing changed; run it again).
  absl::Status Rewrap(MasterKeyProvider& new_provider);
  // Replaces the dictionary key with a fresh random one wrapped by `provider` (one Wrap call
  // without the mutex held), re-seals the body under it, writes the file crash-safely and wipes
  // the old key. The data keys, and so every file, stay as they are. Aborted as for Rewrap.
  absl::Status RotateDictionaryKey(MasterKeyProvider& provider);

  // A copy of the current wrapped-key record (a copy: Rewrap replaces it concurrently).
  WrappedKey wrapped_key() const;
  // Non-secret identifier of the current dictionary key, for display and audit: 16 hex chars,
  // the first 8 bytes of SHA-256("keyward-dictionary-key-id:" + key). Changes on rotation only.
  std::string dictionary_key_id() const;
  size_t size() const;
  // Ids of every data key held, ascending.
  std::vector<uint32_t> DataKeyIds() const;

  // A copy of the dictionary key, for tests that check where key bytes end up.
  SecretBytes DictionaryKeyForTest() const;

 private:
  KeyDictionary(std::string path, std::string cluster_id)
      : path_(std::move(path)), cluster_id_(std::move(cluster_id)) {}
  // Seals the in-memory body under `dictionary_key` with `wrapped` in the header and writes it.
  absl::Status WriteLocked(const SecretBytes& dictionary_key, const WrappedKey& wrapped) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AddKeyLocked(uint64_t now_unix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Installs a wrap made outside the lock if `generation` is still current; `new_key` is the
  // key `wrapped` wraps when it replaces the dictionary key, nullptr for a re-wrap.
  absl::Status InstallWrap(uint64_t generation, SecretBytes* new_key, WrappedKey wrapped,
                           const char* operation);
  void SetDictionaryKeyLocked(SecretBytes key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const std::string cluster_id_;
  mutable std::mutex mu_;
  SecretBytes dictionary_key_ ABSL_GUARDED_BY(mu_);
  std::string dictionary_key_id_ ABSL_GUARDED_BY(mu_);
  WrappedKey wrapped_ ABSL_GUARDED_BY(mu_);
  // Bumped whenever dictionary_key_ or wrapped_ changes; see the header comment.
  uint64_t wrap_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t current_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint32_t, std::shared_ptr<const DataKey>> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace keyward
