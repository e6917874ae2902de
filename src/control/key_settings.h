#pragma once
// The provider settings of an encryption-key record (`provider_config`), validated in one place
// for creating a record and for changing one, so both obey the same rules: a customer-managed
// provider the KMS provider registry knows, a known region of that provider's cloud, the fields
// of the provider's schema with the right types, then the provider module's own rules (names it
// accepts, an AWS ARN in the record's region, a fresh unique suffix on a new Azure key-name
// prefix). Nothing here names a provider: the modules under src/kms/<name>/ do.

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "control/resources.h"
#include "kms/provider_registry.h"

namespace keyward {

// What a key record stores of the customer's settings.
using KeySettings = KmsKeySettings;

// The request field that carries a provider's settings; each provider may also accept its
// older alias (KmsProviderModule::legacy_field, e.g. "azure").
inline constexpr char kProviderConfigField[] = "provider_config";

// Settings for a new record of `provider` in `region`: `config` (null when not given) came in
// the request field `config_field` (provider_config or the provider's alias). InvalidArgument
// naming the field otherwise; an unknown provider's error lists the known ones.
absl::StatusOr<KeySettings> ValidateKeySettings(
    const std::string& provider, const std::string& region, const nlohmann::json& config,
    const std::string& config_field = kProviderConfigField);

// Settings after changing `current` by `change` (the fields to replace; "" removes an optional
// one, and alternatives such as a vault or a Managed HSM replace each other); the result passes
// ValidateKeySettings' rules.
absl::StatusOr<KeySettings> ChangeKeySettings(
    const EncryptionKey& current, const nlohmann::json& change,
    const std::string& config_field = kProviderConfigField);

// The cloud whose regions keys of `provider` live in ("" for an unknown provider or escrow).
std::string CloudForKeyProvider(const std::string& provider);

}  // namespace keyward
