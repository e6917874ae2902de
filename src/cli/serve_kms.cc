#include "cli/serve_kms.h"

#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "crypto/random.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/status_macros.h"

namespace keyward {
namespace {

std::string KmsEnvOr(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// AWS settings from flags and the SDKs' environment variables; credentials are looked up when a
// key first needs them.
AwsKmsSettings LoadAws(const ParsedFlags& flags, const ServiceIdentity& identity) {
  AwsKmsSettings a;
  std::string region = KmsEnvOr("AWS_REGION", KmsEnvOr("AWS_DEFAULT_REGION", "us-east-1"));
  a.credentials = aws::AwsCredentialOptionsFromEnvironment(region);
  a.kms.endpoint_url =
      flags.Get("aws-endpoint-url")
          .value_or(KmsEnvOr("AWS_ENDPOINT_URL_KMS", KmsEnvOr("AWS_ENDPOINT_URL")));
  a.kms.use_fips = flags.Has("aws-use-fips-endpoint") ||
                   absl::AsciiStrToLower(KmsEnvOr("AWS_USE_FIPS_ENDPOINT")) == "true";
  a.kms.principal_arn = identity.aws_principal_arn;
  a.http.ca_file = flags.Get("aws-ca-file").value_or(KmsEnvOr("AWS_CA_BUNDLE"));
  return a;
}

// keyward's real AWS principal (STS GetCallerIdentity) when AWS credentials are configured
// (*configured says whether they are);
// nullopt (with a warning when STS could not say) keeps the stored or generated one. Bounded:
// two attempts with short timeouts, so an unreachable STS delays startup by seconds at most.
std::optional<std::string> AwsCallerArn(const AwsKmsSettings& aws, bool* configured) {
  HttpClientOptions http = aws.http;
  http.max_attempts = 2;
  http.connect_timeout_ms = 3000;
  http.request_timeout_ms = 5000;
  aws::AwsCredentialSource source(aws.credentials, std::make_shared<HttpClient>(http));
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

// Azure settings from flags and the SDKs' environment variables; nullopt when no identity.
absl::StatusOr<std::optional<AzureSettings>> LoadAzure(const ParsedFlags& flags) {
  AzureSettings a;
  a.identity.tenant_id = flags.Get("azure-tenant-id").value_or(KmsEnvOr("AZURE_TENANT_ID"));
  a.identity.client_id = flags.Get("azure-client-id").value_or(KmsEnvOr("AZURE_CLIENT_ID"));
  a.identity.client_secret = KmsEnvOr("AZURE_CLIENT_SECRET");
  a.identity.federated_token_file = KmsEnvOr("AZURE_FEDERATED_TOKEN_FILE");
  a.identity.certificate_path =
      flags.Get("azure-client-certificate").value_or(KmsEnvOr("AZURE_CLIENT_CERTIFICATE_PATH"));
  a.identity.authority_host =
      flags.Get("azure-authority-host")
          .value_or(KmsEnvOr("AZURE_AUTHORITY_HOST", a.identity.authority_host));
  while (!a.identity.authority_host.empty() && a.identity.authority_host.back() == '/')
    a.identity.authority_host.pop_back();
  a.identity.imds_url = flags.Get("azure-imds-url").value_or(a.identity.imds_url);
  // The same precedence as the SDKs' environment credential: secret, certificate, federated.
  if (flags.Has("azure-managed-identity")) {
    a.identity.kind = EntraIdentity::Kind::kManagedIdentity;
  } else if (!a.identity.client_secret.empty()) {
    a.identity.kind = EntraIdentity::Kind::kClientSecret;
  } else if (!a.identity.certificate_path.empty()) {
    a.identity.kind = EntraIdentity::Kind::kClientCertificate;
  } else if (!a.identity.federated_token_file.empty()) {
    a.identity.kind = EntraIdentity::Kind::kWorkloadIdentity;
  } else if (a.identity.client_id.empty() && a.identity.tenant_id.empty()) {
    return std::optional<AzureSettings>();
  } else {
    return absl::InvalidArgumentError(
        "--azure-client-id needs a credential: AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, "
        "AZURE_FEDERATED_TOKEN_FILE or --azure-managed-identity");
  }
  if (a.identity.kind != EntraIdentity::Kind::kManagedIdentity &&
      (a.identity.tenant_id.empty() || a.identity.client_id.empty())) {
    return absl::InvalidArgumentError(
        "Azure needs both --azure-tenant-id and --azure-client-id (or "
        "AZURE_TENANT_ID/AZURE_CLIENT_ID)");
  }
  a.vault.vault_url_template =
      flags.Get("azure-vault-url-template").value_or(a.vault.vault_url_template);
  a.vault.managed_hsm_url_template =
      flags.Get("azure-managed-hsm-url-template").value_or(a.vault.managed_hsm_url_template);
  a.vault.management_host = flags.Get("azure-management-host").value_or(a.vault.management_host);
  a.vault.api_version = flags.Get("azure-api-version").value_or(a.vault.api_version);
  a.http.connect_to = flags.Get("azure-connect-to").value_or("");
  a.http.ca_file = flags.Get("azure-ca-file").value_or("");
  return std::optional<AzureSettings>(std::move(a));
}

}  // namespace

absl::StatusOr<ServiceIdentity> LoadServiceIdentity(const ParsedFlags& flags,
                                                    const std::string& data_dir) {
  std::string path = data_dir + "/service-identity.json";
  nlohmann::json stored = nlohmann::json::object();
  if (access(path.c_str(), F_OK) == 0) {
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, 65536));
    stored = nlohmann::json::parse(text, nullptr, false);
    if (!stored.is_object()) return absl::DataLossError(absl::StrCat(path, " is not valid JSON"));
  } else {
    ASSIGN_OR_RETURN(std::string h, RandomHex(16));
    std::string uuid = absl::StrCat(h.substr(0, 8), "-", h.substr(8, 4), "-4", h.substr(13, 3),
                                    "-a", h.substr(17, 3), "-", h.substr(20, 12));
    ASSIGN_OR_RETURN(std::string acct, RandomHex(6));
    std::string digits;
    for (char c : acct) digits.push_back(static_cast<char>('0' + (c % 10)));
    stored = {
        {"azure_app_id", uuid},
        {"azure_app_name", absl::StrCat("keyward-", h.substr(0, 6))},
        {"aws_principal_arn", absl::StrCat("arn:aws:iam::", digits, ":role/keyward-service")}};
    RETURN_IF_ERROR(WriteFileAtomically(path, stored.dump(2) + "\n", 0600));
  }
  ServiceIdentity id;
  id.azure_app_id = flags.Get("azure-app-id").value_or(stored.value("azure_app_id", ""));
  id.azure_app_name = flags.Get("azure-app-name").value_or(stored.value("azure_app_name", ""));
  id.aws_principal_arn =
      flags.Get("aws-principal-arn").value_or(stored.value("aws_principal_arn", ""));
  return id;
}

absl::StatusOr<ServeKmsSettings> LoadServeKms(const ParsedFlags& flags, ServiceIdentity& identity) {
  ServeKmsSettings out;
  ASSIGN_OR_RETURN(out.azure, LoadAzure(flags));
  std::optional<AzureSettings>& azure = out.azure;
  if (azure && !azure->identity.client_id.empty() && !flags.Has("azure-app-id")) {
    identity.azure_app_id = azure->identity.client_id;  // the application customers grant access to
  }
  if (azure) azure->vault.app_name = identity.azure_app_name;
  identity.azure_placeholder = !azure.has_value();
  if (identity.azure_placeholder) {
    LogWarn("server.no_azure_identity",
            "no Azure identity configured (--azure-client-id …): key setup shows a placeholder "
            "application id");
  }
  out.aws = LoadAws(flags, identity);
  AwsKmsSettings& aws = out.aws;
  bool aws_configured = false;
  std::optional<std::string> caller_arn = AwsCallerArn(aws, &aws_configured);
  identity.aws_placeholder = !aws_configured;
  if (caller_arn && !flags.Has("aws-principal-arn")) {
    identity.aws_principal_arn = *caller_arn;  // the principal customers name in their key policies
    aws.kms.principal_arn = *caller_arn;
  }
  return out;
}

}  // namespace keyward
