#pragma once
// The provider settings of an encryption-key record — which Key Vault / Managed HSM and key-name
// prefix (Azure), which key ARN (AWS) — validated in one place for creating a record and for
// changing one, so both obey the same rules: a known region of the provider's cloud, names the
// provider accepts, an AWS ARN in the record's region, and a fresh unique suffix on every new
// Azure key-name prefix (reference Step 2.7). Pure functions apart from the random suffix.

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "control/resources.h"

namespace keyward {

// What a key record stores of the customer's settings.
struct KeySettings {
  std::string key_name;   // Azure: <prefix>-<8 hex>; AWS: the ARN
  nlohmann::json config;  // becomes EncryptionKey::config_json
};

// Settings for a new record: `provider` is azure-key-vault or aws-kms, `region` a known region
// of its cloud; `azure` ({key_vault_name | managed_hsm_name, key_name_prefix, [subscription_id,
// resource_group]}) or `aws` ({key_arn}) goes with it, the other is null. InvalidArgument naming
// the field otherwise.
absl::StatusOr<KeySettings> ValidateKeySettings(const std::string& provider,
                                                const std::string& region,
                                                const nlohmann::json& azure,
                                                const nlohmann::json& aws);

// Settings after changing `current` by `azure` / `aws` (null: not changed). Fields given replace
// the stored ones (key_vault_name and managed_hsm_name replace each other; "" removes
// subscription_id or resource_group); the result passes ValidateKeySettings. The key name keeps
// its suffix unless the Azure prefix changes, which draws a new one.
absl::StatusOr<KeySettings> ChangeKeySettings(const EncryptionKey& current,
                                              const nlohmann::json& azure,
                                              const nlohmann::json& aws);

// "azure" for azure-key-vault, "aws" for aws-kms, "" otherwise.
std::string CloudForKeyProvider(const std::string& provider);

}  // namespace keyward
