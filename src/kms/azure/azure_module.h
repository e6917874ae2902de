#pragma once
// The azure-key-vault provider's registry module: keys in an Azure Key Vault (RSA, wrapKey /
// unwrapKey) or a Managed HSM (oct-HSM, A256KW). provider_config: key_vault_name |
// managed_hsm_name, key_name_prefix (keyward appends a unique suffix, reference Step 2.7),
// optional subscription_id and resource_group (to check the vault's region). Older requests
// carried the same object as "azure".

#include <memory>

#include "cloud/azure/entra_token.h"
#include "cloud/http_client.h"
#include "kms/azure/azure_key_vault_provider.h"
#include "kms/provider_registry.h"

namespace keyward {

// How keyward reaches Azure as its own application.
struct AzureSettings {
  EntraIdentity identity;
  AzureKeyVaultConfig vault;
  HttpClientOptions http;
};

std::unique_ptr<KmsProviderModule> NewAzureKeyVaultModule();
// The server's Azure client: one token source for keyward's identity, shared by every key.
std::shared_ptr<KmsProviderClient> NewAzureKeyVaultClient(const AzureSettings& settings);

}  // namespace keyward
