#pragma once
// The aws-kms module's part of `keyward serve` (serve_settings.h): its flags, and the server's
// AWS settings made of them and of the AWS SDKs' environment variables (AWS_ACCESS_KEY_ID…,
// AWS_PROFILE, web identity, instance metadata, AWS_ENDPOINT_URL_KMS, AWS_CA_BUNDLE).

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kms/serve_settings.h"
#include "kms/service_identity.h"

namespace keyward::aws {

std::vector<KmsServeFlag> AwsServeFlags();
std::string AwsServeNote();
// keyward's principal: --aws-principal-arn, else the one STS GetCallerIdentity names when
// credentials are configured, else the one generated on first start (kept in `stored`). The
// settings always make a client: its credentials are looked up when a key first needs them, so
// a server without any still starts and its AWS keys say what to set. Bounded: an unreachable
// STS delays start-up by seconds at most.
absl::StatusOr<std::shared_ptr<const KmsServeSettings>> LoadAwsServeSettings(
    const KmsFlagValues& flags, nlohmann::json& stored, ServiceIdentity& identity);

}  // namespace keyward::aws
