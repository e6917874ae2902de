#pragma once
// The seam every customer-master-key service plugs into (escrow, Azure Key Vault, AWS KMS).
//
// A provider wraps and unwraps small secrets (a cluster's dictionary key) under a key that never
// leaves it. `context` is associated data binding a wrapped key to its owner (the cluster id):
// providers that support it (escrow's AES-GCM, AWS encryption context) must refuse to unwrap
// under a different context. The key dictionary binds the cluster id again in its own AEAD, so
// the binding holds for providers without associated data too.
//
// Implementations must be thread-safe; calls may block on the network.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace keyward {

// What a wrapped key records so that it can be unwrapped later, after key rotation too.
// Serialised inside the key dictionary header (see key_dictionary.h for the byte layout).
struct WrappedKey {
  std::string provider;     // "escrow", "azure-key-vault", "aws-kms"
  std::string key_id;       // provider's key identifier (escrow fingerprint, kid URL, ARN)
  std::string key_version;  // the version that wrapped, so an old version still unwraps
  std::string algorithm;    // "A256GCM", "RSA-OAEP-256", "SYMMETRIC_DEFAULT"
  std::string ciphertext;

  std::string Serialize() const;
  static absl::StatusOr<WrappedKey> Parse(std::string_view bytes);
};

// What a provider can tell about its key; optional fields are unknown when the provider
// cannot see them (e.g. purge protection without vault-level read access).
struct KeyDescription {
  std::string key_id;
  std::string key_version;
  bool enabled = false;
  std::optional<bool> purge_protection;
  std::optional<std::string> region;
  // The key's allowed operations include wrap and unwrap. False unless the provider saw both:
  // a reply that does not say is not taken as permission (checks that decide access fail closed).
  bool can_wrap = false;
  std::optional<int64_t> not_before;  // unix seconds; the key is unusable before
  std::optional<int64_t> expires_at;  // unix seconds; the key is unusable after
};

class MasterKeyProvider {
 public:
  virtual ~MasterKeyProvider() = default;

  virtual std::string_view provider_name() const = 0;
  // Identifies the key this provider wraps new secrets with (safe to log).
  virtual std::string key_id() const = 0;

  virtual absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext,
                                          std::string_view context) = 0;
  virtual absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped,
                                             std::string_view context) = 0;
  virtual absl::StatusOr<KeyDescription> Describe() = 0;
};

}  // namespace keyward
