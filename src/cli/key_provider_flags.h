#pragma once
// The CLI's view of the KMS provider registry: each provider's provider_config fields become
// `keyward key create|update` flags (key_vault_name → --key-vault-name), so the CLI names no
// provider and a new provider module brings its flags with it. --provider-config '{"…":…}'
// passes the object as JSON (its fields win over flags of the same name).

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "cli/flags.h"

namespace keyward {

// Every provider field's flag name (without "--"), plus "provider-config".
std::set<std::string> KeyProviderFlagNames();

// The provider_config object from the provider flags given (any provider's: the server refuses
// a field the key's provider does not have, naming it). InvalidArgument when --provider-config
// is not a JSON object.
absl::StatusOr<nlohmann::json> ProviderConfigFromFlags(const ParsedFlags& flags);

// `message` (an API error) with every provider field named as the flag that sets it:
// "provider_config.key_arn must be …" → "--key-arn must be …".
std::string KeyProviderFieldsAsFlags(std::string message);

// Usage lines for `keyward key create`, one per customer-managed provider with its flags.
std::string KeyCreateUsage();

}  // namespace keyward
