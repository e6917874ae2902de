#include "control/key_settings.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/regions.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

// The module's fields, for "field 'provider_config' is required" messages.
std::string FieldList(const KmsProviderModule& m) {
  std::vector<std::string> names;
  for (const KmsConfigField& f : m.config_fields()) names.push_back(f.name);
  return absl::StrJoin(names, ", ");
}

// The settings came under `config_field`: provider_config, or this provider's alias.
absl::Status CheckConfigField(const KmsProviderModule& m, const std::string& config_field) {
  if (config_field == kProviderConfigField || config_field == m.legacy_field()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("field '", config_field,
                                                 "' does not go with provider ", m.name(),
                                                 "; give its settings in provider_config"));
}

}  // namespace

std::string CloudForKeyProvider(const std::string& provider) {
  const KmsProviderModule* m = KmsProviderRegistry::Global().Find(provider);
  return m ? m->cloud() : "";
}

absl::StatusOr<KeySettings> ValidateKeySettings(const std::string& provider,
                                                const std::string& region, const json& config,
                                                const std::string& config_field) {
  ASSIGN_OR_RETURN(const KmsProviderModule* m,
                   KmsProviderRegistry::Global().CustomerManaged(provider));
  RETURN_IF_ERROR(ValidateCloudRegion(m->cloud(), region));
  RETURN_IF_ERROR(CheckConfigField(*m, config_field));
  if (config.is_null()) {
    return absl::InvalidArgumentError(absl::StrCat("field '", config_field, "' is required: the ",
                                                   m->name(), " settings {", FieldList(*m),
                                                   "} (GET /api/v1/kms-providers describes them)"));
  }
  std::string prefix = config_field + ".";
  RETURN_IF_ERROR(CheckKmsConfigFields(*m, config, prefix, /*creating=*/true));
  return m->Validate(region, config, prefix);
}

absl::StatusOr<KeySettings> ChangeKeySettings(const EncryptionKey& current, const json& change,
                                              const std::string& config_field) {
  ASSIGN_OR_RETURN(const KmsProviderModule* m,
                   KmsProviderRegistry::Global().CustomerManaged(current.provider));
  RETURN_IF_ERROR(CheckConfigField(*m, config_field));
  std::string prefix = config_field + ".";
  if (!change.is_null()) {
    RETURN_IF_ERROR(CheckKmsConfigFields(*m, change, prefix, /*creating=*/false));
  }
  return m->Change(KmsKeyRef::FromRecord(current), change, prefix);
}

}  // namespace keyward
