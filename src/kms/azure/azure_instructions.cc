#include "kms/azure/azure_instructions.h"

#include "absl/strings/str_cat.h"

namespace keyward {
namespace {

using nlohmann::json;

constexpr char kCryptoServiceEncryptionUser[] = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
constexpr char kCryptoOfficer[] = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";

json AzureInstructions(const KmsKeyRef& key, const json& cfg, const ServiceIdentity& id) {
  std::string vault = cfg.value("key_vault_name", "");
  std::string rg = cfg.value("resource_group", "<resource-group>");
  std::string vault_scope =
      absl::StrCat("$(az keyvault show --name ", vault, " --query id -o tsv)");
  json commands = json::array({
      {{"step", "Create the service principal for keyward's application (if your tenant has none)"},
       {"command", absl::StrCat("az ad sp create --id ", id.azure_app_id)}},
      {{"step", absl::StrCat("Create a Key Vault with purge protection in ", key.region,
                             " (the cluster's region), or use an existing one that has both")},
       {"command", absl::StrCat("az keyvault create --name ", vault, " --resource-group ", rg,
                                " --location ", key.region,
                                " --enable-purge-protection true --enable-rbac-authorization true"
                                " --retention-days 90")}},
      {{"step", "Assign yourself Key Vault Crypto Officer on the vault"},
       {"command", absl::StrCat("az role assignment create --role \"Key Vault Crypto Officer\""
                                " --assignee $(az ad signed-in-user show --query id -o tsv)"
                                " --scope ",
                                vault_scope)}},
      {{"step", "Create the key under its full name"},
       {"command", absl::StrCat("az keyvault key create --vault-name ", vault, " --name ",
                                key.key_name, " --kty RSA --size 3072 --ops wrapKey unwrapKey")}},
      {{"step", "Let keyward's application wrap and unwrap with this key only"},
       {"command",
        absl::StrCat("az role assignment create --role \"Key Vault Crypto Service Encryption User\""
                     " --assignee-object-id $(az ad sp show --id ",
                     id.azure_app_id,
                     " --query id -o tsv) --assignee-principal-type ServicePrincipal --scope ",
                     vault_scope, "/keys/", key.key_name)}},
      {{"step", "Back in keyward: test the key, which makes it active"},
       {"command",
        absl::StrCat("keyward key test --project ", key.project_id, " ", key.record_id)}},
  });
  return {
      {"service_identity",
       {{"microsoft_entra_application_name", id.azure_app_name},
        {"microsoft_entra_application_id", id.azure_app_id}}},
      {"key_vault_name", vault},
      {"key_vault_url", absl::StrCat("https://", vault, ".vault.azure.net")},
      {"full_key_name", key.key_name},
      {"requirements",
       json::array({"purge protection enabled on the Key Vault",
                    absl::StrCat("Key Vault in region ", key.region),
                    "role Key Vault Crypto Officer for you on the vault",
                    absl::StrCat("role Key Vault Crypto Service Encryption User for application ",
                                 id.azure_app_name, " (", id.azure_app_id, ") on the key")})},
      {"az_commands", commands},
      {"arm_template", AzureArmTemplate()},
      {"arm_parameters",
       {{"location", {{"value", key.region}}},
        {"keyVaultName", {{"value", vault}}},
        {"keyName", {{"value", key.key_name}}},
        {"enterpriseAppServicePrincipalId",
         {{"value",
           absl::StrCat("<az ad sp show --id ", id.azure_app_id, " --query id -o tsv>")}}}}},
  };
}

// Managed HSM: local RBAC roles instead of Azure RBAC, and an oct-HSM key wrapped with A256KW.
json ManagedHsmInstructions(const KmsKeyRef& key, const json& cfg, const ServiceIdentity& id) {
  std::string hsm = cfg.value("managed_hsm_name", "");
  std::string rg = cfg.value("resource_group", "<resource-group>");
  std::string me = "$(az ad signed-in-user show --query id -o tsv)";
  json commands = json::array({
      {{"step", "Create the service principal for keyward's application (if your tenant has none)"},
       {"command", absl::StrCat("az ad sp create --id ", id.azure_app_id)}},
      {{"step", absl::StrCat("Create a Managed HSM with purge protection in ", key.region,
                             " and activate its security domain")},
       {"command", absl::StrCat("az keyvault create --hsm-name ", hsm, " --resource-group ", rg,
                                " --location ", key.region, " --administrators ", me,
                                " --enable-purge-protection true --retention-days 90")}},
      {{"step", "Give yourself Managed HSM Crypto User"},
       {"command",
        absl::StrCat("az keyvault role assignment create --hsm-name ", hsm,
                     " --role \"Managed HSM Crypto User\" --assignee ", me, " --scope /")}},
      {{"step", "Create the key under its full name"},
       {"command", absl::StrCat("az keyvault key create --hsm-name ", hsm, " --name ", key.key_name,
                                " --kty oct-HSM --size 256 --ops wrapKey unwrapKey")}},
      {{"step", "Let keyward's application wrap and unwrap with this key only"},
       {"command",
        absl::StrCat("az keyvault role assignment create --hsm-name ", hsm,
                     " --role \"Managed HSM Crypto Service Encryption User\" --assignee-object-id "
                     "$(az ad sp show --id ",
                     id.azure_app_id, " --query id -o tsv) --scope /keys/", key.key_name)}},
      {{"step", "Back in keyward: test the key, which makes it active"},
       {"command",
        absl::StrCat("keyward key test --project ", key.project_id, " ", key.record_id)}},
  });
  return {{"service_identity",
           {{"microsoft_entra_application_name", id.azure_app_name},
            {"microsoft_entra_application_id", id.azure_app_id}}},
          {"managed_hsm_name", hsm},
          {"managed_hsm_url", absl::StrCat("https://", hsm, ".managedhsm.azure.net")},
          {"full_key_name", key.key_name},
          {"requirements",
           json::array({"purge protection enabled on the Managed HSM",
                        absl::StrCat("Managed HSM in region ", key.region),
                        absl::StrCat("local role Managed HSM Crypto Service Encryption User for ",
                                     id.azure_app_name, " (", id.azure_app_id, ") on /keys/",
                                     key.key_name)})},
          {"az_commands", commands},
          {"arm_template", nullptr}};
}

}  // namespace

json AzureArmTemplate() {
  const std::string ra_key_name =
      "[guid(resourceId('Microsoft.KeyVault/vaults/keys', parameters('keyVaultName'), "
      "parameters('keyName')), parameters('enterpriseAppServicePrincipalId'), "
      "variables('cryptoServiceEncryptionUserRoleId'))]";
  return {
      {"$schema",
       "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"},
      {"contentVersion", "1.0.0.0"},
      {"metadata",
       {{"description",
         "keyward CMEK: Key Vault with purge protection, the encryption key, and role "
         "assignments Key Vault Crypto Service Encryption User (keyward's application, on the key)"
         " and Key Vault Crypto Officer (you, on the vault)"}}},
      {"parameters",
       {{"location",
         {{"type", "string"}, {"metadata", {{"description", "Must match the cluster's region"}}}}},
        {"keyVaultName", {{"type", "string"}}},
        {"keyName",
         {{"type", "string"},
          {"metadata", {{"description", "The full key name keyward showed, suffix included"}}}}},
        {"enterpriseAppServicePrincipalId", {{"type", "string"}}},
        {"cryptoOfficerPrincipalId",
         {{"type", "string"},
          {"defaultValue", ""},
          {"metadata",
           {{"description", "Your object id; gets Key Vault Crypto Officer on the vault"}}}}}}},
      {"variables",
       {{"cryptoServiceEncryptionUserRoleId", kCryptoServiceEncryptionUser},
        {"cryptoServiceEncryptionUserRoleName", "Key Vault Crypto Service Encryption User"},
        {"cryptoOfficerRoleId", kCryptoOfficer},
        {"cryptoOfficerRoleName", "Key Vault Crypto Officer"}}},
      {"resources",
       json::array({
           {{"type", "Microsoft.KeyVault/vaults"},
            {"apiVersion", "2023-07-01"},
            {"name", "[parameters('keyVaultName')]"},
            {"location", "[parameters('location')]"},
            {"properties",
             {{"tenantId", "[subscription().tenantId]"},
              {"sku", {{"family", "A"}, {"name", "premium"}}},
              {"enableSoftDelete", true},
              {"softDeleteRetentionInDays", 90},
              {"enablePurgeProtection", true},
              {"enableRbacAuthorization", true}}}},
           {{"type", "Microsoft.KeyVault/vaults/keys"},
            {"apiVersion", "2023-07-01"},
            {"name", "[format('{0}/{1}', parameters('keyVaultName'), parameters('keyName'))]"},
            {"dependsOn",
             json::array(
                 {"[resourceId('Microsoft.KeyVault/vaults', parameters('keyVaultName'))]"})},
            {"properties",
             {{"kty", "RSA"},
              {"keySize", 3072},
              {"keyOps", json::array({"wrapKey", "unwrapKey"})}}}},
           {{"type", "Microsoft.Authorization/roleAssignments"},
            {"apiVersion", "2022-04-01"},
            {"name", ra_key_name},
            {"scope",
             "[format('Microsoft.KeyVault/vaults/{0}/keys/{1}', parameters('keyVaultName'), "
             "parameters('keyName'))]"},
            {"dependsOn", json::array({"[resourceId('Microsoft.KeyVault/vaults/keys', "
                                       "parameters('keyVaultName'), parameters('keyName'))]"})},
            {"properties",
             {{"roleDefinitionId",
               "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
               "variables('cryptoServiceEncryptionUserRoleId'))]"},
              {"principalId", "[parameters('enterpriseAppServicePrincipalId')]"},
              {"principalType", "ServicePrincipal"}}}},
           {{"type", "Microsoft.Authorization/roleAssignments"},
            {"apiVersion", "2022-04-01"},
            {"condition", "[not(empty(parameters('cryptoOfficerPrincipalId')))]"},
            {"name",
             "[guid(resourceId('Microsoft.KeyVault/vaults', parameters('keyVaultName')), "
             "parameters('cryptoOfficerPrincipalId'), variables('cryptoOfficerRoleId'))]"},
            {"scope", "[format('Microsoft.KeyVault/vaults/{0}', parameters('keyVaultName'))]"},
            {"dependsOn",
             json::array(
                 {"[resourceId('Microsoft.KeyVault/vaults', parameters('keyVaultName'))]"})},
            {"properties",
             {{"roleDefinitionId",
               "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
               "variables('cryptoOfficerRoleId'))]"},
              {"principalId", "[parameters('cryptoOfficerPrincipalId')]"}}}},
       })},
  };
}

namespace {

// Said where the identity is shown, so nobody grants a role to an application that does not
// exist and then wonders why the test fails.
void MarkPlaceholder(json& service_identity, const ServiceIdentity& identity) {
  service_identity["placeholder"] = identity.azure_placeholder;
  if (identity.azure_placeholder) {
    service_identity["warning"] =
        "this keyward server has no Microsoft Entra identity configured: the application name "
        "and id shown are placeholders keyward generated, with nothing real behind them; key "
        "tests will fail until the server runs with a real identity (see keyward serve --help)";
  }
}

}  // namespace

json AzureKeyVaultInstructions(const KmsKeyRef& key, const ServiceIdentity& identity) {
  json out = key.config.contains("managed_hsm_name")
                 ? ManagedHsmInstructions(key, key.config, identity)
                 : AzureInstructions(key, key.config, identity);
  MarkPlaceholder(out["service_identity"], identity);
  return out;
}

json AzureServiceSetup(const ServiceIdentity& identity) {
  json service_identity = {{"microsoft_entra_application_name", identity.azure_app_name},
                           {"microsoft_entra_application_id", identity.azure_app_id}};
  MarkPlaceholder(service_identity, identity);
  return {{"service_identity", service_identity},
          {"create_service_principal_command",
           absl::StrCat("az ad sp create --id ", identity.azure_app_id)},
          {"service_principal_id_command",
           absl::StrCat("az ad sp show --id ", identity.azure_app_id, " --query id -o tsv")}};
}

}  // namespace keyward
