#pragma once
// The service's own master key, for projects without CMEK: a 32-byte key in a file (mode 0600)
// that keyward creates on first start. Wraps with AES-256-GCM, the context as associated data.
// Key id: "escrow-" + first 8 bytes of SHA-256(key) in hex, so a wrong key file is named as such.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kms/master_key_provider.h"

namespace keyward {

class EscrowProvider : public MasterKeyProvider {
 public:
  // Loads the key file, creating it (0600, fresh random key) when it does not exist. Refuses a
  // file that others can read, or one of the wrong size.
  static absl::StatusOr<std::unique_ptr<EscrowProvider>> LoadOrCreate(const std::string& path);
  static absl::StatusOr<std::unique_ptr<EscrowProvider>> Load(const std::string& path);

  std::string_view provider_name() const override { return "escrow"; }
  std::string key_id() const override { return key_id_; }
  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override;
  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped, std::string_view context) override;
  absl::StatusOr<KeyDescription> Describe() override;

 private:
  EscrowProvider(SecretBytes key, std::string path);
  SecretBytes key_;
  std::string path_;
  std::string key_id_;
};

}  // namespace keyward
