#pragma once
// Where encryption-key records meet KMS providers: the control plane asks the factory for the
// MasterKeyProvider behind a key record (escrow, Azure Key Vault, AWS KMS). The product factory
// knows the real providers; tests plug in a fake the way Tink tests its KMS clients. A fake is
// never linked into the product binary.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "control/resources.h"
#include "kms/master_key_provider.h"

namespace keyward {

class KmsFactory {
 public:
  virtual ~KmsFactory() = default;
  // The provider that wraps and unwraps under `key`. NotFound/PermissionDenied/FailedPrecondition
  // errors carry a message the customer can act on.
  virtual absl::StatusOr<std::shared_ptr<MasterKeyProvider>> ProviderFor(
      const EncryptionKey& key) = 0;
};

// The product's factory: escrow today; Azure Key Vault and AWS KMS plug in here.
std::unique_ptr<KmsFactory> NewProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow);

}  // namespace keyward
