#pragma once
// Azure Key Vault as a master-key provider (REST, api-version 7.4 by default), for vaults (RSA
// keys, RSA-OAEP-256) and Managed HSMs (oct-HSM keys, A256KW; key config "managed_hsm_name").
// Wrap: POST {vault}/keys/{name}//wrapkey (the service picks the newest version) with
// RSA-OAEP-256; the wrapped-key record keeps the versioned kid the service answered, and Unwrap
// goes to exactly that version, so rotation in Key Vault never strands a cluster.
// Describe: GET the key (enabled, permitted operations, recoveryLevel → purge protection) and,
// when the customer gave subscription and resource group, ARM GET of the vault (its region).
// Service errors map by error.code / innererror.code to statuses whose messages name the vault,
// the key and the fix: 404 NotFound; KeyDisabled, KeyExpired, KeyNotYetValid FailedPrecondition;
// 403 PermissionDenied; 429/5xx Unavailable. A 200 reply keyward cannot read (azure_replies.h)
// is Unavailable, never a crash. The vault's URL is built from its name and the configured
// template; a host named inside a stored record is never contacted. Thread-safe.

#include <memory>
#include <string>

#include "cloud/azure/entra_token.h"
#include "cloud/http_client.h"
#include "kms/encryption_key.h"
#include "kms/key_ref.h"
#include "kms/master_key_provider.h"

namespace keyward {

struct AzureKeyVaultConfig {
  std::string vault_url_template = "https://{name}.vault.azure.net";
  std::string managed_hsm_url_template = "https://{name}.managedhsm.azure.net";
  std::string management_host = "https://management.azure.com";
  std::string api_version = "7.4";
  std::string app_name;  // keyward's application, named in permission errors
};

class AzureKeyVaultProvider : public MasterKeyProvider {
 public:
  // From the key's own settings (key_vault_name | managed_hsm_name, optional subscription_id and
  // resource_group), full key name and region.
  static absl::StatusOr<std::unique_ptr<AzureKeyVaultProvider>> New(
      const KmsKeyRef& key, AzureKeyVaultConfig config, std::shared_ptr<EntraTokenSource> tokens,
      std::shared_ptr<HttpClient> http);
  static absl::StatusOr<std::unique_ptr<AzureKeyVaultProvider>> New(
      const EncryptionKey& key, AzureKeyVaultConfig config,
      std::shared_ptr<EntraTokenSource> tokens, std::shared_ptr<HttpClient> http) {
    return New(KmsKeyRef::FromRecord(key), std::move(config), std::move(tokens), std::move(http));
  }

  std::string_view provider_name() const override { return "azure-key-vault"; }
  std::string key_id() const override;
  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override;
  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped, std::string_view context) override;
  absl::StatusOr<KeyDescription> Describe() override;

 private:
  AzureKeyVaultProvider() = default;
  // Calls the vault with a bearer token, refreshing it once on 401.
  absl::StatusOr<HttpResponse> Call(const std::string& method, const std::string& url,
                                    const std::string& body, const std::string& resource);
  absl::Status ServiceError(const HttpResponse& res, const std::string& operation) const;
  // A 200 reply that does not parse: Unavailable, so callers retry rather than declare the key
  // lost (the service answered, but not with anything keyward can act on).
  absl::Status Unreadable(const std::string& operation, const absl::Status& why) const;

  AzureKeyVaultConfig config_;
  std::shared_ptr<EntraTokenSource> tokens_;
  std::shared_ptr<HttpClient> http_;
  bool hsm_ = false;      // a Managed HSM (oct-HSM key, A256KW) rather than a vault
  std::string service_;   // "Key Vault" or "Managed HSM", for messages
  std::string resource_;  // token audience
  std::string algorithm_;
  std::string vault_;
  std::string vault_url_;
  std::string key_name_;
  std::string region_;
  std::string subscription_id_;
  std::string resource_group_;
};

}  // namespace keyward
