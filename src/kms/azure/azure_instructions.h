#pragma once
// What the customer must do in their Azure tenant to let keyward use their key, as the
// reference's console shows it (Step 2): keyward's application, the full key name with its
// unique suffix, the `az` commands, a deployable ARM template (Key Vault) or the local RBAC
// commands (Managed HSM). Pure functions.

#include <nlohmann/json.hpp>

#include "kms/key_ref.h"
#include "kms/service_identity.h"

namespace keyward {

// Instructions for an azure-key-vault key (its config names the vault or the Managed HSM).
nlohmann::json AzureKeyVaultInstructions(const KmsKeyRef& key, const ServiceIdentity& identity);

// Before any key record exists: keyward's application and the commands that create its service
// principal in the customer's tenant.
nlohmann::json AzureServiceSetup(const ServiceIdentity& identity);

// The ARM template alone (deployable: `az deployment group create --template-file`).
nlohmann::json AzureArmTemplate();

}  // namespace keyward
