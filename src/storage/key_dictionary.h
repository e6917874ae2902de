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
// Writes go temp → fsync → rename → fsync(dir): a crash leaves the old or the new dictionary.
// Keys are only ever added, so the dictionary on disk always holds every key a live file needs.
// Thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

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
  static constexpr char kFileName[] = "keys.dict";

  // Creates a new dictionary (fresh dictionary key and first data key) at `path`.
  static absl::StatusOr<std::unique_ptr<KeyDictionary>> Create(const std::string& path,
                                                               const std::string& cluster_id,
                                                               MasterKeyProvider& provider,
                                                               uint64_t now_unix);
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
  // Re-wraps the dictionary key under `new_provider`; cost independent of data size.
  absl::Status Rewrap(MasterKeyProvider& new_provider);

  const WrappedKey& wrapped_key() const { return wrapped_; }
  size_t size() const;

 private:
  KeyDictionary(std::string path, std::string cluster_id)
      : path_(std::move(path)), cluster_id_(std::move(cluster_id)) {}
  absl::Status WriteLocked() const;
  absl::Status AddKeyLocked(uint64_t now_unix);

  const std::string path_;
  const std::string cluster_id_;
  mutable std::mutex mu_;
  SecretBytes dictionary_key_;
  WrappedKey wrapped_;
  uint32_t current_id_ = 0;
  std::map<uint32_t, std::shared_ptr<const DataKey>> keys_;
};

}  // namespace keyward
