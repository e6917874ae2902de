#include "control/key_settings.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "control/regions.h"
#include "crypto/random.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

absl::StatusOr<KeySettings> AzureKeySettings(const json& azure) {
  static const std::regex kVault("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$");
  static const std::regex kPrefix("^[0-9a-zA-Z-]{1,100}$");
  if (!azure.is_object()) {
    return absl::InvalidArgumentError(
        "field 'azure' is required: {\"key_vault_name\":…, \"key_name_prefix\":…}");
  }
  bool hsm = azure.contains("managed_hsm_name");
  if (hsm == azure.contains("key_vault_name")) {
    return absl::InvalidArgumentError(
        "give exactly one of azure.key_vault_name (a Key Vault) and azure.managed_hsm_name (a "
        "Managed HSM)");
  }
  const char* vault_field = hsm ? "managed_hsm_name" : "key_vault_name";
  for (const char* field : {vault_field, "key_name_prefix", "subscription_id", "resource_group"}) {
    if (azure.contains(field) && !azure[field].is_string())
      return absl::InvalidArgumentError(absl::StrCat("azure.", field, " must be a string"));
  }
  std::string vault = azure.value(vault_field, "");
  std::string prefix = azure.value("key_name_prefix", "");
  if (!std::regex_match(vault, kVault)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "azure.", vault_field,
        " must be 3-24 characters of letters, digits and '-', starting with a letter"));
  }
  if (!std::regex_match(prefix, kPrefix)) {
    return absl::InvalidArgumentError(
        "azure.key_name_prefix must be 1-100 characters of letters, digits and '-'");
  }
  KeySettings s;
  ASSIGN_OR_RETURN(std::string suffix, RandomHex(4));
  s.key_name = absl::StrCat(prefix, "-", suffix);  // the reference's unique suffix
  s.config = {{vault_field, vault}, {"key_name_prefix", prefix}};
  for (const char* opt : {"subscription_id", "resource_group"}) {
    if (azure.contains(opt)) s.config[opt] = azure[opt];
  }
  return s;
}

absl::StatusOr<KeySettings> AwsSettings(const json& aws, const std::string& region) {
  static const std::regex kArn(
      "^arn:aws[a-z-]*:kms:([a-z0-9-]+):([0-9]{12}):key/[0-9a-fA-F-]{1,64}$");
  std::string arn = aws.is_object() && aws.contains("key_arn") && aws["key_arn"].is_string()
                        ? aws["key_arn"]
                        : "";
  std::smatch m;
  if (!std::regex_match(arn, m, kArn)) {
    return absl::InvalidArgumentError(
        "aws.key_arn must be a KMS key ARN like arn:aws:kms:us-east-1:111122223333:key/<key-id>");
  }
  if (m[1].str() != region) {
    return absl::InvalidArgumentError(absl::StrCat("the key ARN is in region ", m[1].str(),
                                                   " but the key is for region ", region,
                                                   "; use a key created in ", region));
  }
  return KeySettings{arn, json{{"key_arn", arn}}};
}

}  // namespace

std::string CloudForKeyProvider(const std::string& provider) {
  if (provider == "azure-key-vault") return "azure";
  if (provider == "aws-kms") return "aws";
  return "";
}

absl::StatusOr<KeySettings> ValidateKeySettings(const std::string& provider,
                                                const std::string& region, const json& azure,
                                                const json& aws) {
  if (provider != "azure-key-vault" && provider != "aws-kms") {
    return absl::InvalidArgumentError(
        "provider must be azure-key-vault or aws-kms (the key management services CMEK supports)");
  }
  RETURN_IF_ERROR(ValidateCloudRegion(CloudForKeyProvider(provider), region));
  if (provider == "azure-key-vault") {
    if (!aws.is_null())
      return absl::InvalidArgumentError("field 'aws' does not go with provider azure-key-vault");
    return AzureKeySettings(azure);
  }
  if (!azure.is_null())
    return absl::InvalidArgumentError("field 'azure' does not go with provider aws-kms");
  return AwsSettings(aws, region);
}

absl::StatusOr<KeySettings> ChangeKeySettings(const EncryptionKey& current, const json& azure,
                                              const json& aws) {
  if (azure.is_null() && aws.is_null()) {
    return absl::InvalidArgumentError(
        current.provider == "aws-kms"
            ? "nothing to change: give aws.key_arn"
            : "nothing to change: give one or more of azure.key_vault_name, "
              "azure.managed_hsm_name, azure.key_name_prefix, azure.subscription_id, "
              "azure.resource_group");
  }
  json stored = json::parse(current.config_json, nullptr, false);
  if (!stored.is_object()) stored = json::object();
  json merged_azure = azure;
  json merged_aws = aws;
  if (current.provider == "azure-key-vault" && azure.is_object()) {
    merged_azure = stored;
    // A vault and a Managed HSM are alternatives: naming one drops the other.
    if (azure.contains("key_vault_name") || azure.contains("managed_hsm_name")) {
      merged_azure.erase("key_vault_name");
      merged_azure.erase("managed_hsm_name");
    }
    for (const auto& [field, value] : azure.items()) {
      bool clears = (field == "subscription_id" || field == "resource_group") &&
                    value.is_string() && value.get<std::string>().empty();
      if (clears) {
        merged_azure.erase(field);
      } else {
        merged_azure[field] = value;
      }
    }
  }
  ASSIGN_OR_RETURN(KeySettings next,
                   ValidateKeySettings(current.provider, current.region, merged_azure, merged_aws));
  if (current.provider == "azure-key-vault" &&
      next.config.value("key_name_prefix", "") == stored.value("key_name_prefix", "")) {
    next.key_name = current.key_name;  // same prefix: the name the customer already knows
  }
  return next;
}

}  // namespace keyward
