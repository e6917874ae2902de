#include "cli/serve_backup.h"

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crypto/secret_bytes.h"
#include "kms/azure/azure_serve.h"

namespace keyward {

absl::StatusOr<std::unique_ptr<AzureBlobDestination>> LoadBackupAzure(
    const ParsedFlags& flags, const KmsServeConfig& kms_settings) {
  const AzureSettings* azure = AzureServeSettingsIn(kms_settings);
  std::optional<std::string> account = flags.Get("backup-azure-account");
  if (!account) {
    for (const char* f : {"backup-azure-container", "backup-azure-endpoint", "backup-azure-ca-file",
                          "backup-azure-block-size"}) {
      if (flags.Get(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", f, " needs --backup-azure-account (the storage account)"));
      }
    }
    return std::unique_ptr<AzureBlobDestination>();
  }
  AzureBlobConfig config;
  config.account = *account;
  config.container = flags.Get("backup-azure-container").value_or("keyward-backups");
  config.endpoint = flags.Get("backup-azure-endpoint").value_or("");
  if (auto v = flags.Get("backup-azure-block-size");
      v && !absl::SimpleAtoi(*v, &config.block_size)) {
    return absl::InvalidArgumentError("--backup-azure-block-size must be a number of bytes");
  }
  HttpClientOptions http;
  http.ca_file = flags.Get("backup-azure-ca-file").value_or("");
  http.request_timeout_ms = 120'000;  // a block of several MiB on a slow link
  http.max_total = std::chrono::milliseconds(300'000);
  std::string key = KmsEnvOr("AZURE_STORAGE_KEY");
  std::shared_ptr<EntraTokenSource> tokens;
  if (key.empty() && azure) {
    // keyward's own Entra identity, reached the way the Key Vault provider reaches it.
    tokens = std::make_shared<EntraTokenSource>(azure->identity,
                                                std::make_shared<HttpClient>(azure->http));
  }
  auto dest = AzureBlobDestination::New(std::move(config), std::move(key), std::move(tokens),
                                        std::make_shared<HttpClient>(http));
  WipeString(key);
  return dest;
}

}  // namespace keyward
