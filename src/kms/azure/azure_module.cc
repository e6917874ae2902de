#include "kms/azure/azure_module.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "kms/azure/azure_instructions.h"
#include "kms/azure/azure_serve.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

using nlohmann::json;

class AzureKeyVaultModule : public KmsProviderModule {
 public:
  std::string name() const override { return "azure-key-vault"; }
  std::string display_name() const override { return "Azure Key Vault"; }
  std::string cloud() const override { return "azure"; }
  std::string legacy_field() const override { return "azure"; }

  std::vector<KmsConfigField> config_fields() const override {
    return {
        {"key_vault_name", "string", false,
         "the Key Vault (3-24 letters, digits, '-'), in the key's region, purge protection on",
         "vault"},
        {"managed_hsm_name", "string", false, "a Managed HSM instead of a Key Vault", "vault"},
        {"key_name_prefix", "string", true,
         "the key's name before the unique suffix keyward appends (1-100 letters, digits, '-')",
         ""},
        {"subscription_id", "string", false,
         "the vault's subscription (with resource_group: lets the test check the vault's region)",
         ""},
        {"resource_group", "string", false, "the vault's resource group", ""},
    };
  }

  absl::StatusOr<KmsKeySettings> Validate(const std::string&, const json& cfg,
                                          const std::string& prefix) const override {
    static const std::regex kVault("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$");
    static const std::regex kPrefix("^[0-9a-zA-Z-]{1,100}$");
    const char* vault_field =
        cfg.contains("managed_hsm_name") ? "managed_hsm_name" : "key_vault_name";
    std::string vault = cfg.value(vault_field, "");
    std::string key_prefix = cfg.value("key_name_prefix", "");
    if (!std::regex_match(vault, kVault)) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, vault_field,
          " must be 3-24 characters of letters, digits and '-', starting with a letter"));
    }
    if (!std::regex_match(key_prefix, kPrefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "key_name_prefix must be 1-100 characters of letters, digits and '-'"));
    }
    KmsKeySettings s;
    ASSIGN_OR_RETURN(std::string suffix, RandomHex(4));
    s.key_name = absl::StrCat(key_prefix, "-", suffix);  // the reference's unique suffix
    s.config = {{vault_field, vault}, {"key_name_prefix", key_prefix}};
    for (const char* opt : {"subscription_id", "resource_group"}) {
      if (cfg.contains(opt)) s.config[opt] = cfg[opt];
    }
    return s;
  }

  absl::StatusOr<KmsKeySettings> Change(const KmsKeyRef& current, const json& change,
                                        const std::string& prefix) const override {
    ASSIGN_OR_RETURN(KmsKeySettings next, KmsProviderModule::Change(current, change, prefix));
    if (next.config.value("key_name_prefix", "") == current.config.value("key_name_prefix", "")) {
      next.key_name = current.key_name;  // same prefix: the name the customer already knows
    }
    return next;
  }

  json ServiceSetup(const ServiceIdentity& id) const override { return AzureServiceSetup(id); }

  json Instructions(const KmsKeyRef& key, const ServiceIdentity& id) const override {
    json out = AzureKeyVaultInstructions(key, id);
    std::string text = absl::StrCat("keyward's application: ", id.azure_app_name, " (id ",
                                    id.azure_app_id, ")\n", "full key name:         ", key.key_name,
                                    "   (create the key under exactly this name)\n");
    if (out.contains("key_vault_url")) {
      absl::StrAppend(&text, "key vault:             ", out["key_vault_url"].get<std::string>(),
                      "\n");
    } else {
      absl::StrAppend(&text, "managed HSM:           ", out.value("managed_hsm_url", std::string()),
                      "\n");
    }
    absl::StrAppend(&text, "\nsteps:\n");
    for (const auto& step : out["az_commands"]) {
      absl::StrAppend(&text, "  # ", step.value("step", ""), "\n  ", step.value("command", ""),
                      "\n\n");
    }
    if (!out["arm_template"].is_null()) {
      absl::StrAppend(&text, "or deploy the ARM template: keyward key arm-template --project ",
                      key.project_id, " ", key.record_id, " > keyward-cmek.json\n");
    }
    out["text"] = text;
    return out;
  }

  std::vector<KmsKeyCheck> DescriptionChecks(const KmsKeyRef& key,
                                             const KeyDescription& d) const override {
    std::vector<KmsKeyCheck> checks;
    checks.push_back({"enabled", d.enabled,
                      d.enabled ? "key is enabled"
                                : absl::StrCat("key ", key.key_name,
                                               " is disabled; enable it in Key Vault and test "
                                               "again")});
    checks.push_back({"key_operations", d.can_wrap,
                      d.can_wrap ? "wrapKey and unwrapKey allowed"
                                 : "the key's permitted operations exclude wrapKey/unwrapKey; "
                                   "recreate it with --ops wrapKey unwrapKey"});
    if (!d.purge_protection.has_value()) {
      checks.push_back(
          {"purge_protection", true, "purge protection not verified (no vault read access)"});
    } else {
      checks.push_back({"purge_protection", *d.purge_protection,
                        *d.purge_protection
                            ? "purge protection is on"
                            : "purge protection is off on the Key Vault; enable it (reference "
                              "Step 2.6: az keyvault update --enable-purge-protection true) and "
                              "test again"});
    }
    if (!d.region.has_value()) {
      checks.push_back({"region", true,
                        "region not verified (give subscription_id and resource_group to check "
                        "it)"});
    } else {
      bool same = *d.region == key.region;
      checks.push_back(
          {"region", same,
           same ? absl::StrCat("vault region ", *d.region, " matches")
                : absl::StrCat("the key lives in region ", *d.region, " but this key is for ",
                               key.region, "; create the Key Vault in ", key.region,
                               " (reference Step 2.6) or create the key record for ", *d.region)});
    }
    return checks;
  }

  std::string DescribeHint(const KmsKeyRef& key, const absl::Status& st) const override {
    if (absl::IsNotFound(st)) {
      return " (reference Step 2.7: create the key under the full name shown)";
    }
    if (absl::IsPermissionDenied(st)) return " (reference Step 2.9: assign the role on the key)";
    return KmsProviderModule::DescribeHint(key, st);
  }
  std::string wrap_operation() const override { return "wrapKey"; }
  std::string unwrap_operation() const override { return "unwrapKey"; }

  std::string NotConfiguredMessage() const override {
    return "this keyward server has no Azure identity: start it with --azure-tenant-id and "
           "--azure-client-id plus AZURE_CLIENT_SECRET (or --azure-managed-identity, or "
           "AZURE_FEDERATED_TOKEN_FILE)";
  }

  std::vector<KmsServeFlag> serve_flags() const override { return AzureServeFlags(); }
  std::string serve_help_note() const override { return AzureServeNote(); }
  absl::StatusOr<std::shared_ptr<const KmsServeSettings>> LoadServeSettings(
      const KmsFlagValues& flags, json& stored, ServiceIdentity& identity) const override {
    return LoadAzureServeSettings(flags, stored, identity);
  }
};

class AzureKeyVaultClient : public KmsProviderClient {
 public:
  explicit AzureKeyVaultClient(const AzureSettings& settings)
      : vault_(settings.vault),
        http_(std::make_shared<HttpClient>(settings.http)),
        tokens_(std::make_shared<EntraTokenSource>(settings.identity, http_)) {}

  absl::StatusOr<std::shared_ptr<MasterKeyProvider>> New(const KmsKeyRef& key) override {
    ASSIGN_OR_RETURN(std::unique_ptr<AzureKeyVaultProvider> p,
                     AzureKeyVaultProvider::New(key, vault_, tokens_, http_));
    return std::shared_ptr<MasterKeyProvider>(std::move(p));
  }

 private:
  AzureKeyVaultConfig vault_;
  std::shared_ptr<HttpClient> http_;
  std::shared_ptr<EntraTokenSource> tokens_;
};

}  // namespace

std::unique_ptr<KmsProviderModule> NewAzureKeyVaultModule() {
  return std::make_unique<AzureKeyVaultModule>();
}

std::shared_ptr<KmsProviderClient> NewAzureKeyVaultClient(const AzureSettings& settings) {
  return std::make_shared<AzureKeyVaultClient>(settings);
}

}  // namespace keyward
