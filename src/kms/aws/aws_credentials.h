#pragma once
// keyward's AWS identity, found the way the AWS SDKs find theirs, first match wins:
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   2. shared files: profile AWS_PROFILE (default "default") in AWS_SHARED_CREDENTIALS_FILE
//      (~/.aws/credentials, section [name]) or AWS_CONFIG_FILE (~/.aws/config, [profile name]
//      or [default]): aws_access_key_id, aws_secret_access_key, aws_session_token
//   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME) via
//      STS AssumeRoleWithWebIdentity (unsigned POST to the regional STS endpoint)
//   4. EC2 instance metadata (IMDSv2: PUT a session token, then the role's credentials), only
//      when asked for (imds_enabled), since probing 169.254.169.254 off EC2 only costs time
// Temporary credentials are cached until five minutes before they expire. Thread-safe; no lock
// is held across a network call (two threads may fetch at once; both results are valid).

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "kms/aws/sigv4.h"
#include "cloud/http_client.h"

namespace keyward::aws {

struct AwsCredentialOptions {
  std::string access_key_id;  // from the environment
  std::string secret_access_key;
  std::string session_token;
  std::string profile = "default";
  std::string credentials_file;  // empty: none
  std::string config_file;
  std::string web_identity_token_file;
  std::string role_arn;
  std::string role_session_name = "keyward";
  std::string sts_endpoint;              // "https://sts.{region}.amazonaws.com" (or an override)
  std::string sts_region = "us-east-1";  // signing region for STS calls
  bool imds_enabled = false;
  std::string imds_endpoint = "http://169.254.169.254";
  std::function<int64_t()> now;  // unix seconds; injectable for tests
};

// The options the SDK environment variables (and HOME) give; `region` picks the STS endpoint.
AwsCredentialOptions AwsCredentialOptionsFromEnvironment(const std::string& region);

class AwsCredentialSource {
 public:
  AwsCredentialSource(AwsCredentialOptions options, std::shared_ptr<HttpClient> http);

  // FailedPrecondition (saying what to set) when nothing provides credentials; Unavailable when
  // STS or IMDS cannot be reached; PermissionDenied when STS refuses the role.
  absl::StatusOr<SigV4Credentials> Get(bool force_refresh = false);
  // Where the last credentials came from ("environment", "profile dev in FILE", ...), for logs.
  std::string source() const;
  // Whether anything is configured at all (a cheap check that reads no file and calls no one).
  bool configured() const;
  // keyward's principal as AWS sees it (STS GetCallerIdentity, signed), as a key policy names it
  // (an assumed-role session is given as its role ARN).
  absl::StatusOr<std::string> CallerPrincipalArn();

 private:
  absl::StatusOr<SigV4Credentials> Fetch(std::string* source, int64_t* expires_at);
  absl::StatusOr<std::optional<SigV4Credentials>> FromProfile(std::string* source);
  absl::StatusOr<SigV4Credentials> FromWebIdentity(int64_t* expires_at);
  absl::StatusOr<SigV4Credentials> FromImds(int64_t* expires_at);

  AwsCredentialOptions options_;
  std::shared_ptr<HttpClient> http_;
  mutable std::mutex mu_;
  std::optional<SigV4Credentials> cached_ ABSL_GUARDED_BY(mu_);
  int64_t expires_at_ ABSL_GUARDED_BY(mu_) = 0;  // 0: never
  std::string source_ ABSL_GUARDED_BY(mu_);
};

}  // namespace keyward::aws
