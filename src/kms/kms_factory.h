#pragma once
// Where encryption-key records meet KMS providers: the control plane asks the factory for the
// MasterKeyProvider behind a key record (escrow, Azure Key Vault, AWS KMS). The product factory
// knows the real providers; tests plug in a fake the way Tink tests its KMS clients. A fake is
// never linked into the product binary.

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "cloud/azure/entra_token.h"
#include "cloud/http_client.h"
#include "kms/aws/aws_credentials.h"
#include "kms/aws/aws_kms_provider.h"
#include "kms/azure/azure_key_vault_provider.h"
#include "kms/encryption_key.h"
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

// How keyward reaches Azure as its own application (unset: no Azure identity configured).
struct AzureSettings {
  EntraIdentity identity;
  AzureKeyVaultConfig vault;
  HttpClientOptions http;
};

// How keyward reaches AWS KMS as its own principal (credentials found the SDK way).
struct AwsKmsSettings {
  aws::AwsCredentialOptions credentials;
  aws::AwsKmsConfig kms;
  HttpClientOptions http;
};

// The product's factory: the escrow key, Azure Key Vault when `azure` is given, AWS KMS when
// `aws` is given (its credentials are looked up on first use, so a server without any still
// starts and its AWS keys say what to set).
std::unique_ptr<KmsFactory> NewProductKmsFactory(std::shared_ptr<MasterKeyProvider> escrow,
                                                 std::optional<AzureSettings> azure,
                                                 std::optional<AwsKmsSettings> aws);

}  // namespace keyward
