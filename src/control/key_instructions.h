#pragma once
// What the customer must do in their own cloud account to let keyward use their key, as the
// reference's console shows it (Step 2): the service's identity, the full key name with
// keyward's unique suffix, the `az` commands, a deployable ARM template; for AWS the key policy.

#include <nlohmann/json.hpp>
#include <string>

#include "control/resources.h"

namespace keyward {

// The service's own identities in the customers' clouds (reference: "Microsoft Entra
// Application Name and ID").
struct ServiceIdentity {
  std::string azure_app_id;
  std::string azure_app_name;
  std::string aws_principal_arn;
  // True while the server has no credentials of that cloud: the values above were generated
  // (service-identity.json) and nothing real is behind them; the instructions say so.
  bool azure_placeholder = true;
  bool aws_placeholder = true;
};

// Instructions for `key`, whose config_json holds what the customer entered.
nlohmann::json KeyInstructions(const EncryptionKey& key, const ServiceIdentity& identity);

// The key management services keys can be created with (Azure Key Vault, AWS KMS), each with
// its regions, the service's identity there (placeholder flagged) and what the customer needs
// before a key record exists: the `az ad sp` commands, the AWS key policy.
nlohmann::json KeyManagementServices(const ServiceIdentity& identity);

// The ARM template alone (deployable: `az deployment group create --template-file`).
nlohmann::json AzureArmTemplate();

}  // namespace keyward
