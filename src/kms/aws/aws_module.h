#pragma once
// The aws-kms provider's registry module: symmetric keys in AWS KMS named by ARN (JSON 1.1
// protocol, SigV4; aws_kms_provider.h). provider_config: key_arn, in the key record's region.
// Older requests carried the same object as "aws".

#include <memory>

#include "cloud/http_client.h"
#include "kms/aws/aws_credentials.h"
#include "kms/aws/aws_kms_provider.h"
#include "kms/provider_registry.h"

namespace keyward {

// How keyward reaches AWS KMS as its own principal (credentials found the SDK way).
struct AwsKmsSettings {
  aws::AwsCredentialOptions credentials;
  aws::AwsKmsConfig kms;
  HttpClientOptions http;
};

std::unique_ptr<KmsProviderModule> NewAwsKmsModule();
// The server's AWS client: credentials looked up on first use (so a server without any still
// starts and its AWS keys say what to set), shared by every key and cached until they expire.
std::shared_ptr<KmsProviderClient> NewAwsKmsClient(const AwsKmsSettings& settings);

}  // namespace keyward
