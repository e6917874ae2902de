#pragma once
// Where encryption-key records meet KMS providers: the control plane asks the factory for the
// MasterKeyProvider behind a key record. The registry factory looks the record's provider up in
// the KMS provider registry (provider_registry.h) and builds it with that provider's client;
// tests plug in a fake the way Tink tests its KMS clients. A fake is never linked into the
// product binary.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "kms/encryption_key.h"
#include "kms/master_key_provider.h"
#include "kms/provider_registry.h"
#include "kms/serve_settings.h"

namespace keyward {

class KmsFactory {
 public:
  virtual ~KmsFactory() = default;
  // The provider that wraps and unwraps under `key`. NotFound/PermissionDenied/FailedPrecondition
  // errors carry a message the customer can act on; FailedPrecondition when this server has no
  // client for the key's provider (the key cannot be reached from here at all).
  virtual absl::StatusOr<std::shared_ptr<MasterKeyProvider>> ProviderFor(
      const EncryptionKey& key) = 0;
  // Whether this server can reach keys of `provider` (it has a client for it).
  virtual bool Configured(const std::string& provider) const {
    (void)provider;
    return true;
  }
};

// A factory over `registry`: each provider's client by name (escrow's included); a provider
// without one falls back to its module's DefaultClient(). Every provider handed out is counted
// and timed (keyward_kms_* metrics).
std::unique_ptr<KmsFactory> NewRegistryKmsFactory(
    std::map<std::string, std::shared_ptr<KmsProviderClient>> clients,
    const KmsProviderRegistry& registry = KmsProviderRegistry::Global());

// The product's factory: the escrow key, and each provider whose serve settings make a client
// (e.g. AWS KMS always: its credentials are looked up on first use, so a server without any
// still starts and its AWS keys say what to set).
std::unique_ptr<KmsFactory> NewProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow,
                                                 const KmsServeConfig& settings);

}  // namespace keyward
