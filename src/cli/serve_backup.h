#pragma once
// `keyward serve`'s backup destination in Azure Blob Storage (--backup-azure-*): an Azure
// service, not a KMS provider; it authenticates with AZURE_STORAGE_KEY, else with keyward's
// Entra identity as the azure-key-vault module configured it.

#include <memory>

#include "absl/status/statusor.h"
#include "backup/azure_blob_destination.h"
#include "cli/flags.h"
#include "kms/serve_settings.h"

namespace keyward {

// --backup-azure-* (prefix "backup-azure") or --backup-secondary-azure-* (prefix
// "backup-secondary-azure"): a Blob Storage destination, or nullptr when no account is named.
// Shared Key from `key_env`, else (the secondary) from AZURE_STORAGE_KEY when it is the primary's
// account, else keyward's Entra identity.
absl::StatusOr<std::unique_ptr<AzureBlobDestination>> LoadBackupAzure(
    const ParsedFlags& flags, const KmsServeConfig& kms_settings,
    const std::string& prefix = "backup-azure", const char* key_env = "AZURE_STORAGE_KEY");

}  // namespace keyward
