#pragma once
// AWS KMS as a master-key provider (JSON 1.1 protocol, SigV4), for symmetric keys named by ARN.
// Wrap: Encrypt {KeyId: ARN, Plaintext, EncryptionContext}; Unwrap: Decrypt with the same
// context and the ARN as KeyId (a blob of another key is refused). The encryption context binds
// a wrapped key to its owner: {"keyward_context": <context>, "keyward_project": <project id>}
// (the context is the cluster id, or the key test's probe id). The ciphertext blob is AWS's and
// names the key material version itself, so rotation in KMS never strands a cluster.
// Describe: DescribeKey (enabled, KeySpec SYMMETRIC_DEFAULT + KeyUsage ENCRYPT_DECRYPT →
// can_wrap, the ARN's region).
// Endpoint: the override (--aws-endpoint-url, AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL) or
// https://kms[-fips].{region}.amazonaws.com[.cn], region from the key ARN, which is also the
// signing region. Errors map by __type: NotFoundException NotFound; DisabledException and
// KMSInvalidStateException FailedPrecondition; AccessDeniedException PermissionDenied naming
// the action and the key-policy statement to change; InvalidCiphertext/IncorrectKey DataLoss;
// ThrottlingException (retried here with backoff and jitter), KMSInternal and
// DependencyTimeout (retried by HttpClient) Unavailable; signature/credential errors
// Unauthenticated. Thread-safe.

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cloud/http_client.h"
#include "kms/aws/aws_credentials.h"
#include "kms/encryption_key.h"
#include "kms/key_ref.h"
#include "kms/master_key_provider.h"

namespace keyward::aws {

// The key-policy statement keyward's instructions tell customers to add (key_instructions.cc).
inline constexpr char kKeywardPolicySid[] = "AllowKeywardToUseTheKey";

struct AwsKmsConfig {
  std::string endpoint_url;  // empty: the regional endpoint
  bool use_fips = false;
  std::string principal_arn;  // keyward's principal, named in permission errors
  int throttle_attempts = 4;
  std::function<int64_t()> now;  // unix seconds; injectable for tests
};

class AwsKmsProvider : public MasterKeyProvider {
 public:
  // From the key's own settings (key_arn, else its key name) and the project it is bound to.
  static absl::StatusOr<std::unique_ptr<AwsKmsProvider>> New(
      const KmsKeyRef& key, AwsKmsConfig config, std::shared_ptr<AwsCredentialSource> credentials,
      std::shared_ptr<HttpClient> http);
  static absl::StatusOr<std::unique_ptr<AwsKmsProvider>> New(
      const EncryptionKey& key, AwsKmsConfig config,
      std::shared_ptr<AwsCredentialSource> credentials, std::shared_ptr<HttpClient> http) {
    return New(KmsKeyRef::FromRecord(key), std::move(config), std::move(credentials),
               std::move(http));
  }

  std::string_view provider_name() const override { return "aws-kms"; }
  std::string key_id() const override { return arn_; }
  absl::StatusOr<WrappedKey> Wrap(const SecretBytes& plaintext, std::string_view context) override;
  absl::StatusOr<SecretBytes> Unwrap(const WrappedKey& wrapped, std::string_view context) override;
  absl::StatusOr<KeyDescription> Describe() override;

  // The endpoint for `region` under `config` (exposed for tests).
  static std::string EndpointFor(const AwsKmsConfig& config, const std::string& region);

 private:
  AwsKmsProvider() = default;
  // One signed call; retries ThrottlingException and refreshes credentials once when AWS
  // refuses them. Returns the reply body on HTTP 200, else the mapped error.
  absl::StatusOr<std::string> Call(const std::string& operation, const std::string& body);
  absl::Status ServiceError(const HttpResponse& res, const std::string& operation) const;
  nlohmann::json Context(std::string_view context) const;

  AwsKmsConfig config_;
  std::shared_ptr<AwsCredentialSource> credentials_;
  std::shared_ptr<HttpClient> http_;
  std::string arn_;
  std::string region_;
  std::string project_id_;
  std::string endpoint_;
  std::string host_;
};

}  // namespace keyward::aws
