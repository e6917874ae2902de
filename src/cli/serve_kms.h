#pragma once
// The KMS side of `keyward serve`: every registered provider module reads its own flags and its
// SDK's environment variables into settings serve does not look into (kms/serve_settings.h),
// and completes keyward's identity in that provider's cloud (kept in
// DATA_DIR/service-identity.json, 0600, generated on first start; the real identity replaces it
// where the server has credentials). serve names no provider.

#include <string>

#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "kms/provider_registry.h"
#include "kms/serve_settings.h"
#include "kms/service_identity.h"

namespace keyward {

struct ServeKms {
  ServiceIdentity identity;  // shown to customers in key setup
  KmsServeConfig settings;   // for the KMS factory, by provider name
};

// InvalidArgument (naming the flag) for a provider's bad or incomplete settings; DataLoss for
// an unreadable service-identity.json. Bounded: a provider confirming its identity with its
// cloud (STS) delays start-up by seconds at most.
absl::StatusOr<ServeKms> LoadServeKms(
    const ParsedFlags& flags, const std::string& data_dir,
    const KmsProviderRegistry& registry = KmsProviderRegistry::Global());

}  // namespace keyward
