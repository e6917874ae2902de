#include "cli/serve_backup.h"

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crypto/secret_bytes.h"
#include "kms/azure/azure_serve.h"

namespace keyward {

absl::StatusOr<std::unique_ptr<AzureBlobDestination>> LoadBackupAzure(
    const ParsedFlags& flags, const KmsServeConfig& kms_settings, const std::string& prefix,
    const char* key_env) {
  const AzureSettings* azure = AzureServeSettingsIn(kms_settings);
  auto flag = [&](const char* name) { return flags.Get(absl::StrCat(prefix, "-", name)); };
  std::optional<std::string> account = flag("account");
  if (!account) {
    for (const char* f : {"container", "endpoint", "ca-file", "block-size"}) {
      if (flag(f)) {
        return absl::InvalidArgumentError(absl::StrCat("--", prefix, "-", f, " needs --", prefix,
                                                       "-account (the storage account)"));
      }
    }
    return std::unique_ptr<AzureBlobDestination>();
  }
  AzureBlobConfig config;
  config.account = *account;
  config.container = flag("container").value_or("keyward-backups");
  config.endpoint = flag("endpoint").value_or("");
  if (auto v = flag("block-size"); v && !absl::SimpleAtoi(*v, &config.block_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", prefix, "-block-size must be a number of bytes"));
  }
  HttpClientOptions http;
  http.ca_file = flag("ca-file").value_or("");
  http.request_timeout_ms = 120'000;  // a block of several MiB on a slow link
  http.max_total = std::chrono::milliseconds(300'000);
  std::string key = KmsEnvOr(key_env);
  if (key.empty() && prefix != "backup-azure" && flags.Get("backup-azure-account") == account) {
    key = KmsEnvOr("AZURE_STORAGE_KEY");  // the primary's account: its key
  }
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
