#include "kms/azure/azure_serve.h"

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

const KmsServeFlag kAppIdFlag{"azure-app-id", "ID",
                              "keyward's Microsoft Entra application id, shown to customers", ""};
const KmsServeFlag kAppNameFlag{
    "azure-app-name", "NAME", "its display name (both default to a generated, persisted identity)",
    ""};
const KmsServeFlag kTenantFlag{"azure-tenant-id", "T", "or AZURE_TENANT_ID", "AZURE_TENANT_ID"};
const KmsServeFlag kClientFlag{"azure-client-id", "C",
                               "or AZURE_CLIENT_ID; the secret comes from AZURE_CLIENT_SECRET",
                               "AZURE_CLIENT_ID"};
const KmsServeFlag kCertificateFlag{"azure-client-certificate", "F",
                                    "or AZURE_CLIENT_CERTIFICATE_PATH: PEM certificate + key",
                                    "AZURE_CLIENT_CERTIFICATE_PATH"};
const KmsServeFlag kManagedIdentityFlag{
    "azure-managed-identity", "", "use the managed identity endpoint (IMDS) instead of a secret",
    ""};
const KmsServeFlag kImdsFlag{"azure-imds-url", "URL",
                             "managed identity endpoint (default http://169.254.169.254/...)", ""};
const KmsServeFlag kAuthorityFlag{
    "azure-authority-host", "U",
    "or AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com)", "AZURE_AUTHORITY_HOST"};
const KmsServeFlag kManagementFlag{"azure-management-host", "U",
                                   "ARM endpoint (default https://management.azure.com)", ""};
const KmsServeFlag kVaultTemplateFlag{"azure-vault-url-template", "T",
                                      "default https://{name}.vault.azure.net", ""};
const KmsServeFlag kHsmTemplateFlag{"azure-managed-hsm-url-template", "T",
                                    "default https://{name}.managedhsm.azure.net", ""};
const KmsServeFlag kConnectToFlag{"azure-connect-to", "H:P",
                                  "reach every Azure host at H:P (private endpoint, emulator)", ""};
const KmsServeFlag kCaFlag{"azure-ca-file", "F",
                           "CA bundle for Azure's endpoints (private CA, emulator)", ""};
const KmsServeFlag kApiVersionFlag{"azure-api-version", "V", "Key Vault REST version (default 7.4)",
                                   ""};

class AzureServeSettings : public KmsServeSettings {
 public:
  explicit AzureServeSettings(AzureSettings settings) : settings_(std::move(settings)) {}
  std::shared_ptr<KmsProviderClient> NewClient() const override {
    return NewAzureKeyVaultClient(settings_);
  }
  const AzureSettings& settings() const { return settings_; }

 private:
  const AzureSettings settings_;
};

// keyward's application in a customer's tenant, until the server has a real one: a random
// (version 4 form) application id and a name derived from it.
absl::Status GenerateAzureIdentity(nlohmann::json& stored) {
  ASSIGN_OR_RETURN(std::string h, RandomHex(16));
  if (!stored.contains("azure_app_id")) {
    stored["azure_app_id"] =
        absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-4", h.substr(13, 3), "-a",
                     h.substr(17, 3), "-", h.substr(20, 12));
  }
  if (!stored.contains("azure_app_name")) {
    stored["azure_app_name"] = absl::StrCat("keyward-", h.substr(0, 6));
  }
  return absl::OkStatus();
}

// Azure settings from flags and the SDKs' environment variables; nullopt when no identity.
absl::StatusOr<std::optional<AzureSettings>> LoadAzure(const KmsFlagValues& flags) {
  AzureSettings a;
  a.identity.tenant_id = flags.GetOrEnv(kTenantFlag);
  a.identity.client_id = flags.GetOrEnv(kClientFlag);
  a.identity.client_secret = KmsEnvOr("AZURE_CLIENT_SECRET");
  a.identity.federated_token_file = KmsEnvOr("AZURE_FEDERATED_TOKEN_FILE");
  a.identity.certificate_path = flags.GetOrEnv(kCertificateFlag);
  a.identity.authority_host = flags.GetOrEnv(kAuthorityFlag, a.identity.authority_host);
  while (!a.identity.authority_host.empty() && a.identity.authority_host.back() == '/')
    a.identity.authority_host.pop_back();
  a.identity.imds_url = flags.GetOrEnv(kImdsFlag, a.identity.imds_url);
  // The same precedence as the SDKs' environment credential: secret, certificate, federated.
  if (flags.Has(kManagedIdentityFlag.name)) {
    a.identity.kind = EntraIdentity::Kind::kManagedIdentity;
  } else if (!a.identity.client_secret.empty()) {
    a.identity.kind = EntraIdentity::Kind::kClientSecret;
  } else if (!a.identity.certificate_path.empty()) {
    a.identity.kind = EntraIdentity::Kind::kClientCertificate;
  } else if (!a.identity.federated_token_file.empty()) {
    a.identity.kind = EntraIdentity::Kind::kWorkloadIdentity;
  } else if (a.identity.client_id.empty() && a.identity.tenant_id.empty()) {
    return std::optional<AzureSettings>();
  } else {
    return absl::InvalidArgumentError(
        "--azure-client-id needs a credential: AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, "
        "AZURE_FEDERATED_TOKEN_FILE or --azure-managed-identity");
  }
  if (a.identity.kind != EntraIdentity::Kind::kManagedIdentity &&
      (a.identity.tenant_id.empty() || a.identity.client_id.empty())) {
    return absl::InvalidArgumentError(
        "Azure needs both --azure-tenant-id and --azure-client-id (or "
        "AZURE_TENANT_ID/AZURE_CLIENT_ID)");
  }
  a.vault.vault_url_template = flags.GetOrEnv(kVaultTemplateFlag, a.vault.vault_url_template);
  a.vault.managed_hsm_url_template =
      flags.GetOrEnv(kHsmTemplateFlag, a.vault.managed_hsm_url_template);
  a.vault.management_host = flags.GetOrEnv(kManagementFlag, a.vault.management_host);
  a.vault.api_version = flags.GetOrEnv(kApiVersionFlag, a.vault.api_version);
  a.http.connect_to = flags.GetOrEnv(kConnectToFlag);
  a.http.ca_file = flags.GetOrEnv(kCaFlag);
  return std::optional<AzureSettings>(std::move(a));
}

}  // namespace

std::vector<KmsServeFlag> AzureServeFlags() {
  return {kAppIdFlag,           kAppNameFlag,   kTenantFlag,    kClientFlag,     kCertificateFlag,
          kManagedIdentityFlag, kImdsFlag,      kAuthorityFlag, kManagementFlag, kVaultTemplateFlag,
          kHsmTemplateFlag,     kConnectToFlag, kCaFlag,        kApiVersionFlag};
}

std::string AzureServeNote() {
  return "keyward authenticates as its own Entra application, with the same variables as "
         "Azure's SDKs; AZURE_FEDERATED_TOKEN_FILE selects workload identity";
}

absl::StatusOr<std::shared_ptr<const KmsServeSettings>> LoadAzureServeSettings(
    const KmsFlagValues& flags, nlohmann::json& stored, ServiceIdentity& identity) {
  RETURN_IF_ERROR(GenerateAzureIdentity(stored));
  identity.azure_app_id = flags.GetOrEnv(kAppIdFlag, stored.value("azure_app_id", ""));
  identity.azure_app_name = flags.GetOrEnv(kAppNameFlag, stored.value("azure_app_name", ""));
  ASSIGN_OR_RETURN(std::optional<AzureSettings> azure, LoadAzure(flags));
  identity.azure_placeholder = !azure.has_value();
  if (!azure) {
    LogWarn("server.no_azure_identity",
            "no Azure identity configured (--azure-client-id …): key setup shows a placeholder "
            "application id");
    return std::shared_ptr<const KmsServeSettings>();
  }
  if (!azure->identity.client_id.empty() && !flags.Has(kAppIdFlag.name)) {
    identity.azure_app_id = azure->identity.client_id;  // the application customers grant access to
  }
  azure->vault.app_name = identity.azure_app_name;
  return std::make_shared<AzureServeSettings>(std::move(*azure));
}

const AzureSettings* AzureServeSettingsIn(const KmsServeConfig& config) {
  auto it = config.find("azure-key-vault");
  if (it == config.end() || !it->second) return nullptr;
  auto* azure = dynamic_cast<const AzureServeSettings*>(it->second.get());
  return azure ? &azure->settings() : nullptr;
}

}  // namespace keyward
