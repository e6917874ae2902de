#pragma once
// The KMS side of `keyward serve`, out of serve.cc: the settings of the provider clients
// (--azure-*, --aws-* and the SDKs' environment variables: AZURE_CLIENT_ID…, AWS_ACCESS_KEY_ID…,
// AWS_PROFILE, web identity, instance metadata) and keyward's identity shown to customers
// (the real Entra application id, the principal STS GetCallerIdentity names).

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "cli/flags.h"
#include "kms/kms_factory.h"
#include "kms/service_identity.h"

namespace keyward {

// keyward's identities in customers' clouds: from --azure-app-id, --azure-app-name,
// --aws-principal-arn, else generated once and kept in DATA_DIR/service-identity.json (0600).
absl::StatusOr<ServiceIdentity> LoadServiceIdentity(const ParsedFlags& flags,
                                                    const std::string& data_dir);

struct ServeKmsSettings {
  std::optional<AzureSettings> azure;  // nullopt: no Azure identity configured
  AwsKmsSettings aws;                  // credentials are looked up when a key first needs them
};

// Reads the providers' flags and environment; completes `identity` (stored or generated
// before): a configured Azure client id and the STS caller ARN replace the generated ones unless
// --azure-app-id / --aws-principal-arn chose them, and the placeholder flags say which cloud has
// no real identity. InvalidArgument for an incomplete Azure identity. Bounded: an unreachable
// STS delays start-up by seconds at most.
absl::StatusOr<ServeKmsSettings> LoadServeKms(const ParsedFlags& flags, ServiceIdentity& identity);

}  // namespace keyward
