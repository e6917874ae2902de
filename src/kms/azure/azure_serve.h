#pragma once
// The azure-key-vault module's part of `keyward serve` (serve_settings.h): its flags, and the
// server's Azure settings made of them and of the Azure SDKs' environment variables
// (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH,
// AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST).

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kms/azure/azure_module.h"
#include "kms/serve_settings.h"
#include "kms/service_identity.h"

namespace keyward {

std::vector<KmsServeFlag> AzureServeFlags();
std::string AzureServeNote();
// keyward's application: --azure-app-id/--azure-app-name, else the configured client id, else
// the one generated on first start (kept in `stored`). nullptr settings when no Azure identity
// is configured (the key setup then shows the placeholder and says so); InvalidArgument for an
// incomplete one.
absl::StatusOr<std::shared_ptr<const KmsServeSettings>> LoadAzureServeSettings(
    const KmsFlagValues& flags, nlohmann::json& stored, ServiceIdentity& identity);

// The Azure settings (keyward's Entra identity) the azure-key-vault module made of serve's
// flags, for other Azure clients of the server (backups to Blob Storage); nullptr when none.
const AzureSettings* AzureServeSettingsIn(const KmsServeConfig& config);

}  // namespace keyward
