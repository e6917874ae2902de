#include "kms/aws/aws_serve.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "kms/aws/aws_module.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward::aws {
namespace {

const KmsServeFlag kPrincipalFlag{
    "aws-principal-arn", "ARN",
    "keyward's AWS principal for key policies (default: generated, persisted)", ""};
const KmsServeFlag kEndpointFlag{"aws-endpoint-url", "U",
                                 "KMS endpoint for every region (or AWS_ENDPOINT_URL_KMS, "
                                 "AWS_ENDPOINT_URL; default https://kms.{region}.amazonaws.com)",
                                 "AWS_ENDPOINT_URL_KMS"};
const KmsServeFlag kFipsFlag{"aws-use-fips-endpoint", "",
                             "https://kms-fips.{region}.amazonaws.com (or "
                             "AWS_USE_FIPS_ENDPOINT=true)",
                             "AWS_USE_FIPS_ENDPOINT"};
const KmsServeFlag kCaFlag{
    "aws-ca-file", "F",
    "CA bundle for AWS endpoints (or AWS_CA_BUNDLE; private endpoint, emulator)", "AWS_CA_BUNDLE"};

class AwsServeSettings : public KmsServeSettings {
 public:
  explicit AwsServeSettings(AwsKmsSettings settings) : settings_(std::move(settings)) {}
  std::shared_ptr<KmsProviderClient> NewClient() const override {
    return NewAwsKmsClient(settings_);
  }

 private:
  const AwsKmsSettings settings_;
};

// A principal ARN in a random 12-digit account, until the server has a real one.
absl::StatusOr<std::string> GeneratedPrincipalArn() {
  ASSIGN_OR_RETURN(std::string hex, RandomHex(6));
  std::string digits;
  for (char c : hex) digits.push_back(static_cast<char>('0' + (c % 10)));
  return absl::StrCat("arn:aws:iam::", digits, ":role/keyward-service");
}

// keyward's real AWS principal (STS GetCallerIdentity) when AWS credentials are configured
// (*configured says whether they are); nullopt (with a warning when STS could not say) keeps
// the stored or generated one. Bounded: two attempts with short timeouts.
std::optional<std::string> AwsCallerArn(const AwsKmsSettings& aws, bool* configured) {
  HttpClientOptions http = aws.http;
  http.max_attempts = 2;
  http.connect_timeout_ms = 3000;
  http.request_timeout_ms = 5000;
  AwsCredentialSource source(aws.credentials, std::make_shared<HttpClient>(http));
  *configured = source.configured();
  if (!source.configured()) return std::nullopt;
  auto arn = source.CallerPrincipalArn();
  if (!arn.ok()) {
    LogWarn("server.aws_principal_unconfirmed",
            absl::StrCat("could not confirm the AWS principal with STS GetCallerIdentity (",
                         arn.status().message(),
                         "); key policies will name the configured one (set --aws-principal-arn "
                         "to choose it)"));
    return std::nullopt;
  }
  LogInfo("server.aws_principal",
          absl::StrCat("AWS principal ", *arn, " (credentials from ", source.source(), ")"),
          {{"principal_arn", *arn}});
  return *arn;
}

}  // namespace

std::vector<KmsServeFlag> AwsServeFlags() {
  return {kPrincipalFlag, kEndpointFlag, kFipsFlag, kCaFlag};
}

std::string AwsServeNote() {
  return "credentials the AWS SDKs' way: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY "
         "[+ AWS_SESSION_TOKEN], else AWS_PROFILE in ~/.aws/credentials or ~/.aws/config, else "
         "AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN via STS, else EC2 instance metadata when "
         "AWS_EC2_METADATA_SERVICE_ENDPOINT is set";
}

absl::StatusOr<std::shared_ptr<const KmsServeSettings>> LoadAwsServeSettings(
    const KmsFlagValues& flags, nlohmann::json& stored, ServiceIdentity& identity) {
  if (!stored.contains("aws_principal_arn")) {
    ASSIGN_OR_RETURN(stored["aws_principal_arn"], GeneratedPrincipalArn());
  }
  identity.aws_principal_arn =
      flags.GetOrEnv(kPrincipalFlag, stored.value("aws_principal_arn", ""));

  AwsKmsSettings a;
  std::string region = KmsEnvOr("AWS_REGION", KmsEnvOr("AWS_DEFAULT_REGION", "us-east-1"));
  a.credentials = AwsCredentialOptionsFromEnvironment(region);
  a.kms.endpoint_url = flags.GetOrEnv(kEndpointFlag, KmsEnvOr("AWS_ENDPOINT_URL"));
  a.kms.use_fips =
      flags.Has(kFipsFlag.name) || absl::AsciiStrToLower(KmsEnvOr(kFipsFlag.env.c_str())) == "true";
  a.kms.principal_arn = identity.aws_principal_arn;
  a.http.ca_file = flags.GetOrEnv(kCaFlag);

  bool configured = false;
  std::optional<std::string> caller_arn = AwsCallerArn(a, &configured);
  identity.aws_placeholder = !configured;
  if (caller_arn && !flags.Has(kPrincipalFlag.name)) {
    identity.aws_principal_arn = *caller_arn;  // the principal customers name in their policies
    a.kms.principal_arn = *caller_arn;
  }
  return std::make_shared<AwsServeSettings>(std::move(a));
}

}  // namespace keyward::aws
