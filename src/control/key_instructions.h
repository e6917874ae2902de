#pragma once
// What the customer must do in their own cloud account to let keyward use their key, as the
// reference's console shows it (Step 2). The key's provider module writes them (commands,
// templates, policies; kms/<name>/); this is the control plane's one way to ask for them.

#include <nlohmann/json.hpp>

#include "control/resources.h"
#include "kms/service_identity.h"

namespace keyward {

// Instructions for `key`, whose config_json holds what the customer entered; {} for a provider
// with nothing to set up (escrow) or unknown to this server.
nlohmann::json KeyInstructions(const EncryptionKey& key, const ServiceIdentity& identity);

// The customer-managed key services (one per provider module), each with its regions, the
// service's identity there (placeholder flagged) and what the customer sets up before a key
// record exists (the module's ServiceSetup: `az ad sp` commands, an AWS key policy, …). The
// console's Create Encryption Key wizard starts from this.
nlohmann::json KeyManagementServices(const ServiceIdentity& identity);

// A cloud's known regions as a JSON array of names.
nlohmann::json KnownRegionsJson(std::string_view cloud);

}  // namespace keyward
